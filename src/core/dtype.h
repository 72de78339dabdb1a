// Tensor element types, numbered exactly as GGUF / ggml number them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace yiti {

enum class DType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
};

struct DTypeInfo {
    const char* name;      // "q4_K" style name as ggml prints it
    int64_t block_size;    // elements per block (1 for plain types)
    size_t type_size;      // bytes per block
    bool supported;        // we can compute with it (dequantize + matmul)
};

// Info for a raw GGUF type id; nullopt when the id is not a known ggml type.
std::optional<DTypeInfo> dtype_info_raw(uint32_t raw);
const DTypeInfo& dtype_info(DType t);
inline const char* dtype_name(DType t) { return dtype_info(t).name; }
// Bytes of one row of n elements (n must be a multiple of the block size).
inline size_t row_size(DType t, int64_t n) {
    const auto& i = dtype_info(t);
    return (size_t)(n / i.block_size) * i.type_size;
}
std::optional<DType> dtype_from_name(std::string_view name);

}  // namespace yiti
