// Legacy quant family kernels compiled for avx2: see legacy_simd.h.
#include "cpu/legacy_impl.h"
#include "cpu/legacy_simd.h"

namespace yiti::cpu {
const CpuKernels* legacy_kernels_avx2(DType t) { return lsimd::table(t); }
}  // namespace yiti::cpu
