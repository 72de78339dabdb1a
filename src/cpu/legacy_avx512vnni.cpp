// Legacy quant family kernels compiled for avx512vnni: see legacy_simd.h.
#include "cpu/legacy_impl.h"
#include "cpu/legacy_simd.h"

namespace yiti::cpu {
static_assert(YL_VNNI == 1, "built without VNNI flags");
const CpuKernels* legacy_kernels_avx512vnni(DType t) { return lsimd::table(t); }
}  // namespace yiti::cpu
