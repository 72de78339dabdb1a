// Placeholder until the float family lands.
#include "cpu/kernels.h"
namespace yiti::cpu {
const CpuKernels* cpu_kernels_float(DType, Isa) { return nullptr; }
}  // namespace yiti::cpu
