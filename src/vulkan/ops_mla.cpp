#include "vulkan/ops_mla.h"

#include <algorithm>
#include <tuple>

#include "core/error.h"
#include "vulkan/ops_internal.h"

namespace yiti::vk {

using namespace detail;

namespace {

constexpr uint32_t k_copy_threads = 256;
constexpr uint32_t k_bmv_threads = 64;  // mul_mv_batched: threads per workgroup
constexpr uint32_t k_bmv_rows = 2;      // ... weight rows per workgroup
constexpr int64_t k_bmv_max_cols = 8;   // ... columns per dispatch

struct CopyPush {
    uint32_t n0, n1, len, src_off, src_s0, src_s1, dst_off, dst_s0, dst_s1;
};
struct BatchedPush {
    uint32_t ne0, rows, n_mats;
    int32_t rel0;
    uint32_t mat_stride, piece_rows, w_off, w_stride, x_off, x_mat, x_col, y_off, y_mat, y_col;
};

// The bytes a binding of `bytes` at `offset` takes (the view plus its shift to the alignment).
uint64_t binding_bytes(const Context& ctx, uint64_t offset, uint64_t bytes) {
    return bytes + offset % ctx.binding_alignment();
}

}  // namespace

void copy_strided(Sequence& seq, const BufferView& src, const BufferView& dst, int64_t n0, int64_t n1,
                  int64_t len, int64_t src_s0, int64_t src_s1, int64_t dst_s0, int64_t dst_s1) {
    Context& ctx = seq.context();
    YITI_ASSERT(n0 > 0 && n1 > 0 && len > 0);
    YITI_ASSERT(src_s0 >= 0 && src_s1 >= 0 && dst_s0 >= 0 && dst_s1 >= 0);
    YITI_ASSERT(src.offset % 4 == 0 && dst.offset % 4 == 0);
    // Spans in floats, in 64 bits (the checks below keep them within a binding).
    const uint64_t src_span = (uint64_t)(n0 - 1) * src_s0 + (uint64_t)(n1 - 1) * src_s1 + len;
    const uint64_t dst_span = (uint64_t)(n0 - 1) * dst_s0 + (uint64_t)(n1 - 1) * dst_s1 + len;
    YITI_ASSERT(src.size >= src_span * 4 && dst.size >= dst_span * 4);
    const uint64_t range = ctx.limits().max_storage_range;
    for (const auto& [what, v, span] :
         {std::tuple{"source", src, src_span}, std::tuple{"destination", dst, dst_span}})
        if (binding_bytes(ctx, v.offset, span * 4) > range)
            throw Error(
                strprintf("%s: copy_strided's %s span (%llu floats: %lld x %lld rows of %lld) exceeds one "
                          "binding (%llu bytes)",
                          ctx.name().c_str(), what, (unsigned long long)span, (long long)n0, (long long)n1,
                          (long long)len, (unsigned long long)range));
    const uint64_t total = (uint64_t)n0 * n1 * len;
    if (total > UINT32_MAX)
        throw Error(strprintf("%s: copy_strided of %llu floats exceeds one dispatch", ctx.name().c_str(),
                              (unsigned long long)total));
    if (src.buffer == dst.buffer)
        YITI_ASSERT((src.offset + src_span * 4 <= dst.offset || dst.offset + dst_span * 4 <= src.offset) &&
                    "copy_strided: the source and destination spans overlap");
    const Binding bs = seq.bind(src.sub(0, src_span * 4), Access::Read);
    const Binding bd = seq.bind(dst.sub(0, dst_span * 4), Access::Write);
    const Pipeline& p = ctx.pipeline({"copy_strided", 2, sizeof(CopyPush), {k_copy_threads}});
    CopyPush pc{u32(n0),     u32(n1),           u32(len),    bs.shift_elems(4), u32(src_s0),
                u32(src_s1), bd.shift_elems(4), u32(dst_s0), u32(dst_s1)};
    uint32_t gx, gy;
    seq.grid((total + k_copy_threads - 1) / k_copy_threads, &gx, &gy);
    seq.dispatch(p, {bs, bd}, &pc, sizeof pc, gx, gy);
}

void mul_mat_batched(Sequence& seq, const Matrix& w, int64_t row0, int64_t rows_per_mat,
                     int64_t mat_row_stride, int64_t n_mats, const BufferView& x, int64_t n_cols,
                     const BufferView& y) {
    Context& ctx = seq.context();
    YITI_ASSERT(n_mats > 0 && n_cols > 0 && rows_per_mat > 0 && row0 >= 0 && mat_row_stride >= 0);
    YITI_ASSERT(row0 + (n_mats - 1) * mat_row_stride + rows_per_mat <= w.n_out);
    const int64_t n_in = w.n_in, R = rows_per_mat;
    YITI_ASSERT(x.size >= (uint64_t)(n_mats * n_cols * n_in) * 4 &&
                y.size >= (uint64_t)(n_mats * n_cols * R) * 4);
    YITI_ASSERT(x.offset % 4 == 0 && y.offset % 4 == 0);
    // Floats one binding holds (leaving room for its shift); columns per dispatch.
    const int64_t cap = (int64_t)items_per_binding(ctx, 4);
    const int64_t cols_per = std::min({k_bmv_max_cols, cap / n_in, cap / R});
    if (cols_per < 1)
        throw Error(
            strprintf("%s: a column of a %lld x %lld batched product does not fit one binding (%llu bytes)",
                      ctx.name().c_str(), (long long)R, (long long)n_in,
                      (unsigned long long)ctx.limits().max_storage_range));
    const std::string shader = std::string("mul_mv_batched_") + type_suffix(w.type);
    const uint32_t unit = weight_unit_bytes(w.type);
    const int64_t groups_per_mat = (R + k_bmv_rows - 1) / k_bmv_rows;
    for (const Matrix::Piece& piece : w.pieces) {
        // The mats with rows in this piece: a contiguous range (the blocks move down with m).
        const int64_t p_end = piece.row0 + piece.n_rows;
        int64_t m_lo = -1, m_hi = -1;
        for (int64_t m = 0; m < n_mats; ++m) {
            const int64_t r = row0 + m * mat_row_stride;
            if (r < p_end && r + R > piece.row0) {
                if (m_lo < 0) m_lo = m;
                m_hi = m + 1;
            }
        }
        if (m_lo < 0) continue;
        const Binding bw = seq.bind(piece.buf.view(), Access::Read);
        for (int64_t c0 = 0; c0 < n_cols; c0 += cols_per) {
            const int64_t nc = std::min(cols_per, n_cols - c0);
            // Mats per dispatch: x's part of g mats is ((g - 1) n_cols + nc) columns of n_in floats,
            // y's likewise of R floats.
            const int64_t g_max = std::min((cap / n_in - nc) / n_cols, (cap / R - nc) / n_cols) + 1;
            for (int64_t m0 = m_lo; m0 < m_hi; m0 += g_max) {
                const int64_t g = std::min(g_max, m_hi - m0);
                const uint64_t cols_span = (uint64_t)((g - 1) * n_cols + nc);
                const Binding bx = seq.bind(
                    x.sub((uint64_t)(m0 * n_cols + c0) * n_in * 4, cols_span * n_in * 4), Access::Read);
                const Binding by =
                    seq.bind(y.sub((uint64_t)(m0 * n_cols + c0) * R * 4, cols_span * R * 4), Access::Write);
                const int64_t rel0 = row0 + m0 * mat_row_stride - piece.row0;
                YITI_ASSERT(rel0 >= INT32_MIN && rel0 <= INT32_MAX);
                BatchedPush pc{};
                pc.ne0 = u32(n_in);
                pc.rows = u32(R);
                pc.n_mats = u32(g);
                pc.rel0 = (int32_t)rel0;
                pc.mat_stride = u32(mat_row_stride);
                pc.piece_rows = u32(piece.n_rows);
                pc.w_off = bw.shift_elems(unit);
                pc.w_stride = u32((int64_t)(w.row_bytes / unit));
                pc.x_off = bx.shift_elems(4);
                pc.x_mat = u32(n_cols * n_in);
                pc.x_col = u32(n_in);
                pc.y_off = by.shift_elems(4);
                pc.y_mat = u32(n_cols * R);
                pc.y_col = u32(R);
                const Pipeline& p =
                    ctx.pipeline({shader, 3, sizeof(BatchedPush), {k_bmv_threads, (uint32_t)nc, k_bmv_rows}});
                uint32_t gx, gy;
                seq.grid((uint64_t)(g * groups_per_mat), &gx, &gy);
                seq.dispatch(p, {bw, bx, by}, &pc, sizeof pc, gx, gy);
            }
        }
    }
}

}  // namespace yiti::vk
