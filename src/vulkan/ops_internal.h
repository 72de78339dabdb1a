// Helpers the Vulkan ops' host files share (ops.cpp and the ops_*.cpp beside it).
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"
#include "vulkan/context.h"

namespace yiti::vk::detail {

// The weight types the products take: the suffix of their shader variants (weights.glsl).
inline const char* type_suffix(DType t) {
    switch (t) {
        case DType::F32:
            return "f32";
        case DType::F16:
            return "f16";
        case DType::BF16:
            return "bf16";
        case DType::Q8_0:
            return "q8_0";
        case DType::Q4_0:
            return "q4_0";
        case DType::Q4_1:
            return "q4_1";
        case DType::Q5_0:
            return "q5_0";
        case DType::Q5_1:
            return "q5_1";
        case DType::IQ4_NL:
            return "iq4_nl";
        case DType::Q2_K:
            return "q2_k";
        case DType::Q3_K:
            return "q3_k";
        case DType::Q4_K:
            return "q4_k";
        case DType::Q5_K:
            return "q5_k";
        case DType::Q6_K:
            return "q6_k";
        case DType::IQ4_XS:
            return "iq4_xs";
        default:
            return nullptr;
    }
}

// Bytes of the unit the shaders index weights in (weights.glsl): every block of the other types is
// a whole number of 16-bit words (checked in upload_matrix).
inline uint32_t weight_unit_bytes(DType t) {
    return t == DType::F32 ? 4 : 2;
}

// The largest number of items of `item_bytes` one binding holds (leaving room for its shift).
inline uint64_t items_per_binding(const Context& ctx, uint64_t item_bytes) {
    const uint64_t range = ctx.limits().max_storage_range, slack = ctx.binding_alignment() - 1;
    return range > slack ? (range - slack) / item_bytes : 0;
}

inline uint32_t u32(int64_t v) {
    YITI_ASSERT(v >= 0 && v <= (int64_t)UINT32_MAX);
    return (uint32_t)v;
}

}  // namespace yiti::vk::detail
