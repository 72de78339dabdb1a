// Float family kernels compiled for avx512: see float_simd.h.
#include "cpu/float_impl.h"
#include "cpu/float_simd.h"

namespace yiti::cpu {
static_assert(YF_512 == 1, "built without AVX-512 flags");
const CpuKernels* float_kernels_avx512(DType t) { return fsimd::table(t); }
}  // namespace yiti::cpu
