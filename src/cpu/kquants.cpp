// Placeholder until the kquants family lands.
#include "cpu/kernels.h"
namespace yiti::cpu {
const CpuKernels* cpu_kernels_kquants(DType, Isa) { return nullptr; }
}  // namespace yiti::cpu
