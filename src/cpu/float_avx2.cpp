// Float family kernels compiled for avx2: see float_simd.h.
#include "cpu/float_impl.h"
#include "cpu/float_simd.h"

namespace yiti::cpu {
const CpuKernels* float_kernels_avx2(DType t) { return fsimd::table(t); }
}  // namespace yiti::cpu
