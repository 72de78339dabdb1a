#include "quant/quant.h"

#include "core/error.h"

namespace yiti::quant {

const RefTraits* ref_traits(DType t) {
    if (auto* r = ref_traits_float(t)) return r;
    if (auto* r = ref_traits_legacy(t)) return r;
    if (auto* r = ref_traits_kquants(t)) return r;
    if (auto* r = ref_traits_iquants(t)) return r;
    return nullptr;
}

void dequantize_row_ref(DType t, const void* src, float* dst, int64_t n) {
    const RefTraits* r = ref_traits(t);
    YITI_ASSERT(r && r->to_float);
    r->to_float(src, dst, n);
}

void quantize_row_ref(DType t, const float* src, void* dst, int64_t n) {
    const RefTraits* r = ref_traits(t);
    YITI_ASSERT(r && r->from_float);
    r->from_float(src, dst, n);
}

DType vec_dot_type(DType t) {
    const RefTraits* r = ref_traits(t);
    YITI_ASSERT(r);
    return r->vec_dot_type;
}

}  // namespace yiti::quant
