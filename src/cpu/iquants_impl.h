// Internal to the i-quant CPU kernels: one table per instruction-set build. Each ISA build
// (iquants_avx2.cpp, iquants_avx512.cpp, iquants_avx512vnni.cpp) compiles iquants_simd.h with its own
// flags; iquants.cpp holds the scalar variant and picks among them at run time.
#pragma once
#include "cpu/kernels.h"

namespace yiti::cpu::iq {

// Kernels for t (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S) built for one instruction set;
// nullptr for other types. Their from_float is null (iquants.cpp completes the tables with the Q8_K
// quantizer of the same level). Call only when the CPU supports that instruction set.
const CpuKernels* kernels_avx2(DType t);
const CpuKernels* kernels_avx512(DType t);
const CpuKernels* kernels_avx512vnni(DType t);

}  // namespace yiti::cpu::iq
