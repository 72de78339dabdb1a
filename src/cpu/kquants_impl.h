// Internal to the k-quant CPU kernels: one table per instruction-set build. Each ISA build
// (kquants_avx2.cpp, kquants_avx512.cpp, kquants_avx512vnni.cpp) compiles kquants_simd.h with its own
// flags; kquants.cpp holds the scalar variant and picks among them at run time.
#pragma once
#include "cpu/kernels.h"

namespace yiti::cpu::kq {

// Kernels for t (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS) built for one instruction set; nullptr for
// other types. Call only when the CPU supports that instruction set.
const CpuKernels* kernels_avx2(DType t);
const CpuKernels* kernels_avx512(DType t);
const CpuKernels* kernels_avx512vnni(DType t);

}  // namespace yiti::cpu::kq
