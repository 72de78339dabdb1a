#include "core/dtype.h"

#include <array>
#include <cstring>

#include "core/error.h"

namespace yiti {

namespace {
struct Entry {
    uint32_t id;
    DTypeInfo info;
};
constexpr Entry k_types[] = {
    {0, {"f32", 1, 4, true}},         {1, {"f16", 1, 2, true}},
    {2, {"q4_0", 32, 18, true}},      {3, {"q4_1", 32, 20, true}},
    {6, {"q5_0", 32, 22, true}},      {7, {"q5_1", 32, 24, true}},
    {8, {"q8_0", 32, 34, true}},      {9, {"q8_1", 32, 36, false}},
    {10, {"q2_K", 256, 84, true}},    {11, {"q3_K", 256, 110, true}},
    {12, {"q4_K", 256, 144, true}},   {13, {"q5_K", 256, 176, true}},
    {14, {"q6_K", 256, 210, true}},   {15, {"q8_K", 256, 292, false}},
    {16, {"iq2_xxs", 256, 66, true}}, {17, {"iq2_xs", 256, 74, true}},
    {18, {"iq3_xxs", 256, 98, true}}, {19, {"iq1_s", 256, 50, true}},
    {20, {"iq4_nl", 32, 18, true}},   {21, {"iq3_s", 256, 110, true}},
    {22, {"iq2_s", 256, 82, true}},  {23, {"iq4_xs", 256, 136, true}},
    {24, {"i8", 1, 1, false}},        {25, {"i16", 1, 2, false}},
    {26, {"i32", 1, 4, false}},       {27, {"i64", 1, 8, false}},
    {28, {"f64", 1, 8, false}},       {29, {"iq1_m", 256, 56, true}},
    {30, {"bf16", 1, 2, true}},
};
}  // namespace

std::optional<DTypeInfo> dtype_info_raw(uint32_t raw) {
    for (const auto& e : k_types)
        if (e.id == raw) return e.info;
    return std::nullopt;
}

const DTypeInfo& dtype_info(DType t) {
    for (const auto& e : k_types)
        if (e.id == (uint32_t)t) return e.info;
    YITI_ASSERT(false && "unknown dtype");
    return k_types[0].info;
}

std::optional<DType> dtype_from_name(std::string_view name) {
    for (const auto& e : k_types) {
        if (strncasecmp(e.info.name, name.data(), name.size()) == 0 && strlen(e.info.name) == name.size())
            return (DType)e.id;
    }
    return std::nullopt;
}

}  // namespace yiti
