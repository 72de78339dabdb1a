// Placeholder until the legacy family lands.
#include "cpu/kernels.h"
namespace yiti::cpu {
const CpuKernels* cpu_kernels_legacy(DType, Isa) { return nullptr; }
}  // namespace yiti::cpu
