// Shared declarations of the legacy quant family's CPU kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL,
// with Q8_0 / Q8_1 activations). Each ISA file defines one table; legacy.cpp dispatches.
#pragma once
#include "cpu/kernels.h"

namespace yiti::cpu {

// Kernels compiled for one instruction set; nullptr for types the file does not handle.
// Only call after checking the CPU supports that level.
const CpuKernels* legacy_kernels_avx2(DType t);        // legacy_avx2.cpp
const CpuKernels* legacy_kernels_avx512(DType t);      // legacy_avx512.cpp
const CpuKernels* legacy_kernels_avx512vnni(DType t);  // legacy_avx512vnni.cpp

}  // namespace yiti::cpu
