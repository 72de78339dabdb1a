// Helpers the Vulkan ops' host files share (ops.cpp and the ops_*.cpp beside it).
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "vulkan/context.h"
#include "vulkan/ops.h"

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

// The push constants of the products y = W x (mul_mv, mul_mm, mul_mvq).
struct MulPush {
    uint32_t ne0, n_rows, n_cols, w_off, w_stride, x_off, x_stride, y_off, y_stride;
};

// A weight the products take: its type has a product (else Error naming the weight).
inline void require_product_type(const Context& ctx, const Tensor& w) {
    if (!mul_mat_supported(w.type))
        throw Error(strprintf("%s: no Vulkan product for '%s' of type %s", ctx.name().c_str(), w.name.c_str(),
                              dtype_name(w.type)));
}

// ... and its rows are whole blocks (else Error naming the weight).
inline void require_whole_blocks(const Context& ctx, const Tensor& w) {
    if (w.ne[0] % dtype_info(w.type).block_size != 0)
        throw Error(strprintf("%s: rows of '%s' (%lld) are not whole %s blocks", ctx.name().c_str(),
                              w.name.c_str(), (long long)w.ne[0], dtype_name(w.type)));
}

// Columns of a product with an n_out x n_in weight one dispatch's bindings hold: as many x columns
// of x_col_bytes and y columns (n_out floats) as fit, at least one (else Error).
inline int64_t product_cols_per_binding(const Context& ctx, uint64_t x_col_bytes, int64_t n_in,
                                        int64_t n_out) {
    const int64_t cols_per =
        (int64_t)std::min(items_per_binding(ctx, x_col_bytes), items_per_binding(ctx, (uint64_t)n_out * 4));
    if (cols_per < 1)
        throw Error(strprintf("%s: a column of %lld x %lld product does not fit one binding (%llu bytes)",
                              ctx.name().c_str(), (long long)n_out, (long long)n_in,
                              (unsigned long long)ctx.limits().max_storage_range));
    return cols_per;
}

// The y binding of columns c0 .. c0 + nc - 1 of a product with w: the rows of one piece in each
// column, n_out apart.
inline Binding bind_y_columns(Sequence& seq, const BufferView& y, const Matrix& w, const Matrix::Piece& piece,
                              int64_t c0, int64_t nc) {
    const uint64_t y_first = (uint64_t)c0 * w.n_out + piece.row0;
    const uint64_t y_span = (uint64_t)(nc - 1) * w.n_out + piece.n_rows;
    return seq.bind(y.sub(y_first * 4, y_span * 4), Access::Write);
}

// The push constants of a product's dispatch over nc columns of one piece of w (x_stride: x's
// column stride in 32-bit words).
inline MulPush mul_push(const Matrix& w, const Matrix::Piece& piece, int64_t nc, const Binding& bw,
                        const Binding& bx, const Binding& by, int64_t x_stride) {
    const uint32_t unit = weight_unit_bytes(w.type);
    MulPush pc{};
    pc.ne0 = u32(w.n_in);
    pc.n_rows = u32(piece.n_rows);
    pc.n_cols = u32(nc);
    pc.w_off = bw.shift_elems(unit);
    pc.w_stride = u32((int64_t)(w.row_bytes / unit));
    pc.x_off = bx.shift_elems(4);
    pc.x_stride = u32(x_stride);
    pc.y_off = by.shift_elems(4);
    pc.y_stride = u32(w.n_out);
    return pc;
}

}  // namespace yiti::vk::detail
