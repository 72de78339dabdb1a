#include "vulkan/ops_int8.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "vulkan/ops_internal.h"

namespace yiti::vk {

using namespace detail;

namespace {

// Workgroup shapes (specialization constants of the shaders): threads and weight rows per
// workgroup. GPUs as mul_mv's; a software device (lavapipe runs a workgroup's threads as loops
// split at barriers) fewer threads: 16 x 4 ran the 4096 x 4096 Q4_K product as fast as mul_mv's
// 16 x 16 there (within the noise of a loaded 2-core machine), and a quarter of the rows per
// workgroup makes a quarter of the unrolled code: lavapipe compiles a pipeline at its first
// dispatch, ~8x faster (the 8-column Q4_K kernel in 1.4 s instead of 11 s).
constexpr uint32_t k_mvq_threads = 64, k_mvq_rows = 4;
constexpr uint32_t k_mvq_threads_sw = 16, k_mvq_rows_sw = 4;
constexpr uint32_t k_mvq_max_cols = 8;  // mul_mvq: columns per dispatch
constexpr uint32_t k_quant_threads = 64;

struct QuantizePush {
    uint32_t n_in, n_cols, x_off, x_stride, q_off, q_stride;
};

uint64_t column_bytes(int64_t n_in) {
    return (uint64_t)(n_in / k_q8_block) * k_q8_block_bytes;
}

}  // namespace

bool mul_mat_q8_supported(DType t) {
    switch (t) {
        case DType::Q8_0:
        case DType::Q4_0:
        case DType::Q4_1:
        case DType::Q5_0:
        case DType::Q5_1:
        case DType::IQ4_NL:
        case DType::Q2_K:
        case DType::Q3_K:
        case DType::Q4_K:
        case DType::Q5_K:
        case DType::Q6_K:
        case DType::IQ4_XS:
            return true;
        default:
            return false;
    }
}

uint64_t quantized_bytes(int64_t n_in, int64_t n_cols) {
    YITI_ASSERT(n_in > 0 && n_in % k_q8_block == 0 && n_cols >= 0);
    return column_bytes(n_in) * (uint64_t)n_cols;
}

bool q8_uses_packed_dot(const Context& ctx) {
    return ctx.desc().int8_dot && ctx.int8_dot();
}

void quantize_q8(Sequence& seq, const BufferView& x, int64_t n_in, int64_t n_cols, const BufferView& xq) {
    Context& ctx = seq.context();
    YITI_ASSERT(n_in > 0 && n_in % k_q8_block == 0 && n_cols > 0);
    YITI_ASSERT(x.size >= (uint64_t)n_cols * n_in * 4 && xq.size >= quantized_bytes(n_in, n_cols));
    YITI_ASSERT(x.offset % 4 == 0 && xq.offset % 4 == 0);
    const uint64_t col_bytes = column_bytes(n_in);
    const int64_t cols_per =
        (int64_t)std::min(items_per_binding(ctx, (uint64_t)n_in * 4), items_per_binding(ctx, col_bytes));
    if (cols_per < 1)
        throw Error(strprintf("%s: an activation column of %lld values does not fit one binding (%llu bytes)",
                              ctx.name().c_str(), (long long)n_in,
                              (unsigned long long)ctx.limits().max_storage_range));
    const Pipeline& p = ctx.pipeline({"quantize_q8", 2, sizeof(QuantizePush), {k_quant_threads}});
    const int64_t nb = n_in / k_q8_block;
    for (int64_t c0 = 0; c0 < n_cols; c0 += cols_per) {
        const int64_t nc = std::min(cols_per, n_cols - c0);
        const Binding bx = seq.bind(x.sub((uint64_t)c0 * n_in * 4, (uint64_t)nc * n_in * 4), Access::Read);
        const Binding bq =
            seq.bind(xq.sub((uint64_t)c0 * col_bytes, (uint64_t)nc * col_bytes), Access::Write);
        QuantizePush pc{};
        pc.n_in = u32(n_in);
        pc.n_cols = u32(nc);
        pc.x_off = bx.shift_elems(4);
        pc.x_stride = u32(n_in);
        pc.q_off = bq.shift_elems(4);
        pc.q_stride = u32((int64_t)col_bytes / 4);
        uint32_t gx, gy;
        seq.grid(((uint64_t)nb * nc + k_quant_threads - 1) / k_quant_threads, &gx, &gy);
        seq.dispatch(p, {bx, bq}, &pc, sizeof pc, gx, gy);
    }
}

void mul_mat_q8(Sequence& seq, const Matrix& w, const BufferView& xq, int64_t n_cols, const BufferView& y,
                const MulMatQ8Options& opt) {
    Context& ctx = seq.context();
    if (!mul_mat_q8_supported(w.type))
        throw Error(strprintf("%s: no integer product for weights of type %s", ctx.name().c_str(),
                              dtype_name(w.type)));
    YITI_ASSERT(n_cols > 0 && w.n_in % dtype_info(w.type).block_size == 0 && w.n_in % k_q8_block == 0);
    const uint64_t col_bytes = column_bytes(w.n_in);
    YITI_ASSERT(xq.size >= col_bytes * n_cols && y.size >= (uint64_t)n_cols * w.n_out * 4);
    YITI_ASSERT(xq.offset % 4 == 0 && y.offset % 4 == 0);
    bool packed = opt.dot == Int8Dot::Packed || (opt.dot == Int8Dot::Auto && q8_uses_packed_dot(ctx));
    if (packed && !ctx.int8_dot())
        throw Error(strprintf("%s: no integer dot products (shaderIntegerDotProduct)", ctx.name().c_str()));
    // Columns per dispatch: as many as the xq and y bindings hold (y: the rows of one piece in each
    // column, n_out apart), at most 8.
    int64_t cols_per = product_cols_per_binding(ctx, col_bytes, w.n_in, w.n_out);
    cols_per = std::min<int64_t>(cols_per, k_mvq_max_cols);

    const bool sw = ctx.desc().software;
    const uint32_t threads = sw ? k_mvq_threads_sw : k_mvq_threads, rows = sw ? k_mvq_rows_sw : k_mvq_rows;
    const std::string shader = std::string("mul_mvq_") + type_suffix(w.type) + (packed ? "_dot" : "");
    for (const Matrix::Piece& piece : w.pieces) {
        const Binding bw = seq.bind(piece.buf.view(), Access::Read);
        for (int64_t c0 = 0; c0 < n_cols; c0 += cols_per) {
            const int64_t nc = std::min(cols_per, n_cols - c0);
            const Binding bx =
                seq.bind(xq.sub((uint64_t)c0 * col_bytes, (uint64_t)nc * col_bytes), Access::Read);
            const Binding by = bind_y_columns(seq, y, w, piece, c0, nc);
            const MulPush pc = mul_push(w, piece, nc, bw, bx, by, (int64_t)col_bytes / 4);
            const Pipeline& p = ctx.pipeline({shader, 3, sizeof(MulPush), {threads, (uint32_t)nc, rows}});
            uint32_t gx, gy;
            seq.grid((piece.n_rows + rows - 1) / rows, &gx, &gy);
            seq.dispatch(p, {bw, bx, by}, &pc, sizeof pc, gx, gy);
        }
    }
}

}  // namespace yiti::vk
