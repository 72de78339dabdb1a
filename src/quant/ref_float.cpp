// Placeholder until the float family lands.
#include "quant/quant.h"
namespace yiti::quant {
const RefTraits* ref_traits_float(DType) { return nullptr; }
}  // namespace yiti::quant
