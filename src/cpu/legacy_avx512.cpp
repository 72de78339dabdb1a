// Legacy quant family kernels compiled for avx512: see legacy_simd.h.
#include "cpu/legacy_impl.h"
#include "cpu/legacy_simd.h"

namespace yiti::cpu {
static_assert(YL_512 == 1 && YL_VNNI == 0, "built with unexpected ISA flags");
const CpuKernels* legacy_kernels_avx512(DType t) { return lsimd::table(t); }
}  // namespace yiti::cpu
