#include "vulkan/ops.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace yiti::vk {

namespace {

// Workgroup shapes (specialization constants of the shaders).
constexpr uint32_t k_mv_threads = 64;  // mul_mv: threads per workgroup
constexpr uint32_t k_mv_rows = 2;      // mul_mv: weight rows per workgroup
constexpr uint32_t k_mv_max_cols = 8;  // mul_mv: columns per dispatch
constexpr uint32_t k_mm_tile = 64;     // mul_mm: rows and columns per workgroup
constexpr uint32_t k_norm_threads = 256;
constexpr uint32_t k_eltwise_threads = 256;
// Rows per piece of a matrix, so that the tiled kernel's grid (rows / 64) stays within 65535.
constexpr int64_t k_max_piece_rows = 1 << 21;

struct MulPush {
    uint32_t ne0, n_rows, n_cols, w_off, w_stride, x_off, x_stride, y_off, y_stride;
};
struct NormPush {
    uint32_t n, n_rows, x_off, x_stride, w_off, out_off, out_stride;
    float eps;
};
struct SiluMulPush {
    uint32_t n, g_off, u_off, out_off;
};
struct AddPush {
    uint32_t n, a_off, b_off, out_off, b_n, b_phase;
};

// The weight types the products take: the suffix of their shader variants (weights.glsl).
const char* type_suffix(DType t) {
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
uint32_t weight_unit_bytes(DType t) {
    return t == DType::F32 ? 4 : 2;
}

// The largest number of items of `item_bytes` one binding holds (leaving room for its shift).
uint64_t items_per_binding(const Context& ctx, uint64_t item_bytes) {
    const uint64_t range = ctx.limits().max_storage_range, slack = ctx.binding_alignment() - 1;
    return range > slack ? (range - slack) / item_bytes : 0;
}

uint32_t u32(int64_t v) {
    YITI_ASSERT(v >= 0 && v <= (int64_t)UINT32_MAX);
    return (uint32_t)v;
}

}  // namespace

bool mul_mat_supported(DType t) {
    return type_suffix(t) != nullptr;
}

Matrix upload_matrix(Context& ctx, const Tensor& w) {
    if (!mul_mat_supported(w.type))
        throw Error(strprintf("%s: no Vulkan product for '%s' of type %s", ctx.name().c_str(), w.name.c_str(),
                              dtype_name(w.type)));
    YITI_ASSERT(w.ne[2] == 1 && w.ne[3] == 1 && w.data);
    if (w.ne[0] % dtype_info(w.type).block_size != 0)
        throw Error(strprintf("%s: rows of '%s' (%lld) are not whole %s blocks", ctx.name().c_str(),
                              w.name.c_str(), (long long)w.ne[0], dtype_name(w.type)));
    Matrix m;
    m.type = w.type;
    m.n_in = w.ne[0];
    m.n_out = w.ne[1];
    m.row_bytes = row_size(w.type, w.ne[0]);
    YITI_ASSERT(dtype_info(w.type).type_size % weight_unit_bytes(w.type) == 0);
    const uint64_t limit = std::min(ctx.limits().max_storage_range, ctx.limits().max_alloc);
    const int64_t rows_per_piece = std::min<int64_t>(k_max_piece_rows, (int64_t)(limit / m.row_bytes));
    if (rows_per_piece < 1)
        throw Error(strprintf("%s: a row of '%s' (%zu bytes) exceeds the storage-buffer range (%llu bytes)",
                              ctx.name().c_str(), w.name.c_str(), m.row_bytes, (unsigned long long)limit));
    std::vector<uint8_t> packed;
    for (int64_t r0 = 0; r0 < m.n_out; r0 += rows_per_piece) {
        Matrix::Piece p;
        p.row0 = r0;
        p.n_rows = std::min(rows_per_piece, m.n_out - r0);
        const uint64_t bytes = (uint64_t)p.n_rows * m.row_bytes;
        p.buf = ctx.alloc(bytes, w.name.c_str());
        const uint8_t* src = (const uint8_t*)w.data + (size_t)r0 * w.nb[1];
        if (w.nb[1] == m.row_bytes) {
            ctx.upload(p.buf.view(), src, bytes);
        } else {  // strided rows: gathered on the host first
            packed.resize(bytes);
            for (int64_t r = 0; r < p.n_rows; ++r)
                memcpy(&packed[r * m.row_bytes], src + r * w.nb[1], m.row_bytes);
            ctx.upload(p.buf.view(), packed.data(), bytes);
        }
        m.pieces.push_back(std::move(p));
    }
    return m;
}

void mul_mat(Sequence& seq, const Matrix& w, const BufferView& x, int64_t n_cols, const BufferView& y,
             const MulMatOptions& opt) {
    Context& ctx = seq.context();
    YITI_ASSERT(n_cols > 0);
    YITI_ASSERT(x.size >= (uint64_t)n_cols * w.n_in * 4 && y.size >= (uint64_t)n_cols * w.n_out * 4);
    YITI_ASSERT(x.offset % 4 == 0 && y.offset % 4 == 0);
    const bool tiled =
        opt.path == MulMatPath::Tiled || (opt.path == MulMatPath::Auto && n_cols > k_mv_max_cols);
    // Columns per dispatch: as many as the x and y bindings hold (y: the rows of one piece in each
    // column, n_out apart), at most 8 for the vector kernel.
    int64_t cols_per = (int64_t)std::min(items_per_binding(ctx, (uint64_t)w.n_in * 4),
                                         items_per_binding(ctx, (uint64_t)w.n_out * 4));
    if (cols_per < 1)
        throw Error(strprintf("%s: a column of %lld x %lld product does not fit one binding (%llu bytes)",
                              ctx.name().c_str(), (long long)w.n_out, (long long)w.n_in,
                              (unsigned long long)ctx.limits().max_storage_range));
    if (!tiled) cols_per = std::min<int64_t>(cols_per, k_mv_max_cols);

    const std::string shader = std::string(tiled ? "mul_mm_" : "mul_mv_") + type_suffix(w.type);
    const uint32_t unit = weight_unit_bytes(w.type);
    for (const Matrix::Piece& piece : w.pieces) {
        const Binding bw = seq.bind(piece.buf.view(), Access::Read);
        for (int64_t c0 = 0; c0 < n_cols; c0 += cols_per) {
            const int64_t nc = std::min(cols_per, n_cols - c0);
            const Binding bx =
                seq.bind(x.sub((uint64_t)c0 * w.n_in * 4, (uint64_t)nc * w.n_in * 4), Access::Read);
            const uint64_t y_first = (uint64_t)c0 * w.n_out + piece.row0;
            const uint64_t y_span = (uint64_t)(nc - 1) * w.n_out + piece.n_rows;
            const Binding by = seq.bind(y.sub(y_first * 4, y_span * 4), Access::Write);
            MulPush pc{};
            pc.ne0 = u32(w.n_in);
            pc.n_rows = u32(piece.n_rows);
            pc.n_cols = u32(nc);
            pc.w_off = bw.shift_elems(unit);
            pc.w_stride = u32((int64_t)(w.row_bytes / unit));
            pc.x_off = bx.shift_elems(4);
            pc.x_stride = u32(w.n_in);
            pc.y_off = by.shift_elems(4);
            pc.y_stride = u32(w.n_out);
            if (tiled) {
                const Pipeline& p = ctx.pipeline({shader, 3, sizeof(MulPush), {}});
                const uint64_t gx = (piece.n_rows + k_mm_tile - 1) / k_mm_tile;
                const uint64_t gy = (nc + k_mm_tile - 1) / k_mm_tile;
                YITI_ASSERT(gx <= 65535 && gy <= 65535);
                seq.dispatch(p, {bw, bx, by}, &pc, sizeof pc, (uint32_t)gx, (uint32_t)gy);
            } else {
                const Pipeline& p =
                    ctx.pipeline({shader, 3, sizeof(MulPush), {k_mv_threads, (uint32_t)nc, k_mv_rows}});
                uint32_t gx, gy;
                seq.grid((piece.n_rows + k_mv_rows - 1) / k_mv_rows, &gx, &gy);
                seq.dispatch(p, {bw, bx, by}, &pc, sizeof pc, gx, gy);
            }
        }
    }
}

void rms_norm(Sequence& seq, const BufferView& x, const BufferView& weight, int64_t n, int64_t n_rows,
              float eps, const BufferView& out) {
    Context& ctx = seq.context();
    YITI_ASSERT(n > 0 && n_rows > 0);
    YITI_ASSERT(x.size >= (uint64_t)n * n_rows * 4 && out.size >= (uint64_t)n * n_rows * 4 &&
                weight.size >= (uint64_t)n * 4);
    const int64_t rows_per = (int64_t)items_per_binding(ctx, (uint64_t)n * 4);
    if (rows_per < 1)
        throw Error(strprintf("%s: an rms_norm row of %lld floats does not fit one binding",
                              ctx.name().c_str(), (long long)n));
    const Pipeline& p = ctx.pipeline({"rms_norm", 3, sizeof(NormPush), {k_norm_threads}});
    const Binding bw = seq.bind(weight.sub(0, (uint64_t)n * 4), Access::Read);
    for (int64_t r0 = 0; r0 < n_rows; r0 += rows_per) {
        const int64_t nr = std::min(rows_per, n_rows - r0);
        const uint64_t off = (uint64_t)r0 * n * 4, bytes = (uint64_t)nr * n * 4;
        const Binding bx = seq.bind(x.sub(off, bytes), Access::Read);
        const Binding bo = seq.bind(out.sub(off, bytes), Access::Write);
        NormPush pc{u32(n), u32(nr), bx.shift_elems(4), u32(n), bw.shift_elems(4), bo.shift_elems(4),
                    u32(n), eps};
        uint32_t gx, gy;
        seq.grid((uint64_t)nr, &gx, &gy);
        seq.dispatch(p, {bx, bw, bo}, &pc, sizeof pc, gx, gy);
    }
}

void silu_mul(Sequence& seq, const BufferView& gate, const BufferView& up, int64_t n, const BufferView& out) {
    Context& ctx = seq.context();
    YITI_ASSERT(n > 0 && gate.size >= (uint64_t)n * 4 && up.size >= (uint64_t)n * 4 &&
                out.size >= (uint64_t)n * 4);
    const int64_t per = (int64_t)items_per_binding(ctx, 4);
    YITI_ASSERT(per > 0);
    const Pipeline& p = ctx.pipeline({"silu_mul", 3, sizeof(SiluMulPush), {k_eltwise_threads}});
    for (int64_t e0 = 0; e0 < n; e0 += per) {
        const int64_t ne = std::min(per, n - e0);
        const Binding bg = seq.bind(gate.sub(e0 * 4, ne * 4), Access::Read);
        const Binding bu = seq.bind(up.sub(e0 * 4, ne * 4), Access::Read);
        const Binding bo = seq.bind(out.sub(e0 * 4, ne * 4), Access::Write);
        SiluMulPush pc{u32(ne), bg.shift_elems(4), bu.shift_elems(4), bo.shift_elems(4)};
        uint32_t gx, gy;
        seq.grid((ne + k_eltwise_threads - 1) / k_eltwise_threads, &gx, &gy);
        seq.dispatch(p, {bg, bu, bo}, &pc, sizeof pc, gx, gy);
    }
}

void add(Sequence& seq, const BufferView& a, const BufferView& b, int64_t n, const BufferView& out,
         int64_t b_n) {
    Context& ctx = seq.context();
    YITI_ASSERT(n > 0 && b_n >= 0 && (b_n == 0 || n % b_n == 0));
    YITI_ASSERT(a.size >= (uint64_t)n * 4 && out.size >= (uint64_t)n * 4 &&
                b.size >= (uint64_t)(b_n ? b_n : n) * 4);
    const int64_t per = (int64_t)items_per_binding(ctx, 4);
    YITI_ASSERT(per > 0);
    if (b_n > per)
        throw Error(strprintf("%s: a broadcast row of %lld floats does not fit one binding",
                              ctx.name().c_str(), (long long)b_n));
    const Pipeline& p = ctx.pipeline({"add", 3, sizeof(AddPush), {k_eltwise_threads}});
    for (int64_t e0 = 0; e0 < n; e0 += per) {
        const int64_t ne = std::min(per, n - e0);
        const Binding ba = seq.bind(a.sub(e0 * 4, ne * 4), Access::Read);
        const Binding bb = seq.bind(b_n ? b.sub(0, b_n * 4) : b.sub(e0 * 4, ne * 4), Access::Read);
        const Binding bo = seq.bind(out.sub(e0 * 4, ne * 4), Access::Write);
        AddPush pc{u32(ne),           ba.shift_elems(4), bb.shift_elems(4),
                   bo.shift_elems(4), u32(b_n),          u32(b_n ? e0 % b_n : 0)};
        uint32_t gx, gy;
        seq.grid((ne + k_eltwise_threads - 1) / k_eltwise_threads, &gx, &gy);
        seq.dispatch(p, {ba, bb, bo}, &pc, sizeof pc, gx, gy);
    }
}

}  // namespace yiti::vk
