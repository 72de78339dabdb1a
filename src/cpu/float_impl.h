// Shared declarations of the float family's CPU kernels (F32, F16, BF16 weights, F32 activations).
// Each ISA file defines one table; float.cpp dispatches.
#pragma once
#include "cpu/kernels.h"

namespace yiti::cpu {

// Kernels compiled for one instruction set; nullptr for types the file does not handle.
// Only call after checking the CPU supports that level.
const CpuKernels* float_kernels_avx2(DType t);    // float_avx2.cpp
const CpuKernels* float_kernels_avx512(DType t);  // float_avx512.cpp (also used at AVX512_VNNI)

}  // namespace yiti::cpu
