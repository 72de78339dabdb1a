#include "vulkan/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "vulkan/ops_internal.h"

namespace yiti::vk {

using namespace detail;

namespace {

// Workgroup shapes (specialization constants of the shaders).
// mul_mv: threads and weight rows per workgroup. A software device (lavapipe) runs a workgroup's
// threads as loops split at every barrier: fewer threads with more rows each ran SmolLM2's decode
// 2.7x faster there (16 x 16 against 64 x 4); GPUs get wider workgroups.
constexpr uint32_t k_mv_threads = 64, k_mv_rows = 4;
constexpr uint32_t k_mv_threads_sw = 16, k_mv_rows_sw = 16;
constexpr uint32_t k_mv_max_cols = 8;  // mul_mv: columns per dispatch
constexpr uint32_t k_mm_tile = 64;     // mul_mm: rows and columns per workgroup
constexpr uint32_t k_norm_threads = 256;
constexpr uint32_t k_eltwise_threads = 256;
// Rows per piece of a matrix, so that the tiled kernel's grid (rows / 64) stays within 65535.
constexpr int64_t k_max_piece_rows = 1 << 21;

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
struct GetRowsPush {
    uint32_t ne0, n_tok, row0, n_rows, w_off, w_stride, ids_off, out_off;
};
struct RopePush {
    uint32_t n_rows, n_heads, head_stride, n_rot, neox, x_off, pos_off;
    float theta_scale, freq_scale, ext_factor, corr0, corr1, mscale;
};
struct SoftmaxPush {
    uint32_t n, n_rows, x_off, out_off;
};
struct KVStorePush {
    uint32_t dim, n_tok, src_off, slots_off, dst_off;
};
struct AttnPush {
    uint32_t n_tok, n_head, n_rep, hd_k, hd_v, k_dim, v_dim, v_head, block_size, q_off, k_off, v_off, out_off,
        meta_off;
    float scale;
};
constexpr uint32_t k_get_rows_threads = 64;
constexpr uint32_t k_attn_threads = 64;
constexpr uint32_t k_attn_dims_per_thread = 4;  // heads up to 256 values (the common sizes)
constexpr int64_t k_attn_max_dim = 1024;        // larger heads (MLA: 576 / 512): more dims per thread

}  // namespace

bool mul_mat_supported(DType t) {
    return type_suffix(t) != nullptr;
}

Matrix upload_matrix(Context& ctx, const Tensor& w) {
    require_product_type(ctx, w);
    YITI_ASSERT(w.ne[2] == 1 && w.ne[3] == 1 && w.data);
    require_whole_blocks(ctx, w);
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
    // A software device runs the tiled kernel's barriers as loop splits: the vector kernel over
    // groups of 8 columns is faster there (SmolLM2 pp32 on lavapipe: 3.7 against 2.4 t/s).
    const bool tiled = opt.path == MulMatPath::Tiled ||
                       (opt.path == MulMatPath::Auto && n_cols > k_mv_max_cols && !ctx.desc().software);
    // Columns per dispatch: as many as the x and y bindings hold (y: the rows of one piece in each
    // column, n_out apart), at most 8 for the vector kernel.
    int64_t cols_per = product_cols_per_binding(ctx, (uint64_t)w.n_in * 4, w.n_in, w.n_out);
    if (!tiled) cols_per = std::min<int64_t>(cols_per, k_mv_max_cols);
    const bool sw = ctx.desc().software;
    const uint32_t mv_threads = sw ? k_mv_threads_sw : k_mv_threads, mv_rows = sw ? k_mv_rows_sw : k_mv_rows;

    const std::string shader = std::string(tiled ? "mul_mm_" : "mul_mv_") + type_suffix(w.type);
    for (const Matrix::Piece& piece : w.pieces) {
        const Binding bw = seq.bind(piece.buf.view(), Access::Read);
        for (int64_t c0 = 0; c0 < n_cols; c0 += cols_per) {
            const int64_t nc = std::min(cols_per, n_cols - c0);
            const Binding bx =
                seq.bind(x.sub((uint64_t)c0 * w.n_in * 4, (uint64_t)nc * w.n_in * 4), Access::Read);
            const Binding by = bind_y_columns(seq, y, w, piece, c0, nc);
            const MulPush pc = mul_push(w, piece, nc, bw, bx, by, w.n_in);
            if (tiled) {
                const Pipeline& p = ctx.pipeline({shader, 3, sizeof(MulPush), {}});
                const uint64_t gx = (piece.n_rows + k_mm_tile - 1) / k_mm_tile;
                const uint64_t gy = (nc + k_mm_tile - 1) / k_mm_tile;
                YITI_ASSERT(gx <= 65535 && gy <= 65535);
                seq.dispatch(p, {bw, bx, by}, &pc, sizeof pc, (uint32_t)gx, (uint32_t)gy);
            } else {
                const Pipeline& p =
                    ctx.pipeline({shader, 3, sizeof(MulPush), {mv_threads, (uint32_t)nc, mv_rows}});
                uint32_t gx, gy;
                seq.grid((piece.n_rows + mv_rows - 1) / mv_rows, &gx, &gy);
                seq.dispatch(p, {bw, bx, by}, &pc, sizeof pc, gx, gy);
            }
        }
    }
}

void rms_norm(Sequence& seq, const BufferView& x, const BufferView& weight, int64_t n, int64_t n_rows,
              float eps, const BufferView& out, int64_t ld_x, int64_t ld_out) {
    Context& ctx = seq.context();
    if (ld_x == 0) ld_x = n;
    if (ld_out == 0) ld_out = n;
    YITI_ASSERT(n > 0 && n_rows > 0 && ld_x >= n && ld_out >= n);
    YITI_ASSERT(x.size >= (uint64_t)((n_rows - 1) * ld_x + n) * 4 &&
                out.size >= (uint64_t)((n_rows - 1) * ld_out + n) * 4 && weight.size >= (uint64_t)n * 4);
    const int64_t rows_per = (int64_t)items_per_binding(ctx, (uint64_t)std::max(ld_x, ld_out) * 4);
    if (rows_per < 1)
        throw Error(strprintf("%s: an rms_norm row of %lld floats does not fit one binding",
                              ctx.name().c_str(), (long long)n));
    const Pipeline& p = ctx.pipeline({"rms_norm", 3, sizeof(NormPush), {k_norm_threads}});
    const Binding bw = seq.bind(weight.sub(0, (uint64_t)n * 4), Access::Read);
    for (int64_t r0 = 0; r0 < n_rows; r0 += rows_per) {
        const int64_t nr = std::min(rows_per, n_rows - r0);
        const Binding bx = seq.bind(x.sub((uint64_t)(r0 * ld_x) * 4, (uint64_t)((nr - 1) * ld_x + n) * 4), Access::Read);
        const Binding bo =
            seq.bind(out.sub((uint64_t)(r0 * ld_out) * 4, (uint64_t)((nr - 1) * ld_out + n) * 4), Access::Write);
        NormPush pc{u32(n), u32(nr), bx.shift_elems(4), u32(ld_x), bw.shift_elems(4), bo.shift_elems(4),
                    u32(ld_out), eps};
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

void get_rows(Sequence& seq, const Matrix& w, const int32_t* ids, int64_t n, const BufferView& ids_dev,
              const BufferView& out) {
    Context& ctx = seq.context();
    YITI_ASSERT(n > 0 && ids_dev.size >= (uint64_t)n * 4 && out.size >= (uint64_t)n * w.n_in * 4);
    YITI_ASSERT(ids_dev.offset % 4 == 0 && out.offset % 4 == 0);
    for (int64_t t = 0; t < n; ++t)
        if (ids[t] < 0 || ids[t] >= w.n_out)
            throw Error(strprintf("token id %d is out of range (vocabulary has %lld tokens)", ids[t],
                                  (long long)w.n_out));
    seq.upload(ids_dev.sub(0, (uint64_t)n * 4), ids, (uint64_t)n * 4);
    const int64_t per = (int64_t)items_per_binding(ctx, (uint64_t)w.n_in * 4);
    if (per < 1)
        throw Error(strprintf("%s: a get_rows row of %lld floats does not fit one binding",
                              ctx.name().c_str(), (long long)w.n_in));
    const Pipeline& p = ctx.pipeline(
        {std::string("get_rows_") + type_suffix(w.type), 3, sizeof(GetRowsPush), {k_get_rows_threads}});
    const uint32_t unit = weight_unit_bytes(w.type);
    for (const Matrix::Piece& piece : w.pieces) {
        const Binding bw = seq.bind(piece.buf.view(), Access::Read);
        for (int64_t t0 = 0; t0 < n; t0 += per) {
            const int64_t nt = std::min(per, n - t0);
            const Binding bi = seq.bind(ids_dev.sub((uint64_t)t0 * 4, (uint64_t)nt * 4), Access::Read);
            const Binding bo =
                seq.bind(out.sub((uint64_t)t0 * w.n_in * 4, (uint64_t)nt * w.n_in * 4), Access::Write);
            GetRowsPush pc{u32(w.n_in),          u32(nt),
                           u32(piece.row0),      u32(piece.n_rows),
                           bw.shift_elems(unit), u32((int64_t)(w.row_bytes / unit)),
                           bi.shift_elems(4),    bo.shift_elems(4)};
            uint32_t gx, gy;
            seq.grid((uint64_t)nt, &gx, &gy);
            seq.dispatch(p, {bw, bi, bo}, &pc, sizeof pc, gx, gy);
        }
    }
}

void rope(Sequence& seq, const cpu::RopeParams& rp, const BufferView& x, int64_t n_rows, int n_heads,
          int64_t head_stride, const int32_t* pos, const BufferView& pos_dev) {
    Context& ctx = seq.context();
    YITI_ASSERT(n_rows > 0 && n_heads > 0 && rp.n_rot > 0 && rp.n_rot % 2 == 0 && rp.n_rot <= head_stride);
    // x may start inside a head (the rope part of DeepSeek's queries): the last row ends at its
    // last head's n_rot-th value.
    const uint64_t row_bytes = (uint64_t)n_heads * head_stride * 4;
    const uint64_t last_row = ((uint64_t)(n_heads - 1) * head_stride + (uint64_t)rp.n_rot) * 4;
    YITI_ASSERT(x.size >= (uint64_t)(n_rows - 1) * row_bytes + last_row && pos_dev.size >= (uint64_t)n_rows * 4);
    YITI_ASSERT(x.offset % 4 == 0 && pos_dev.offset % 4 == 0);
    seq.upload(pos_dev.sub(0, (uint64_t)n_rows * 4), pos, (uint64_t)n_rows * 4);
    // The values cpu::rope computes once per table, with the same float operations.
    const int n_rot = rp.n_rot;
    RopePush pc{};
    pc.n_heads = (uint32_t)n_heads;
    pc.head_stride = u32(head_stride);
    pc.n_rot = (uint32_t)n_rot;
    pc.neox = rp.style == cpu::RopeStyle::Neox;
    pc.theta_scale = std::pow(rp.freq_base, -2.0f / n_rot);
    pc.freq_scale = rp.freq_scale;
    pc.ext_factor = rp.ext_factor;
    pc.mscale = rp.attn_factor;
    if (rp.ext_factor != 0.0f) {
        const auto corr_dim = [&](float beta) {
            return n_rot * std::log(rp.n_ctx_orig / (beta * 2 * (float)M_PI)) / (2 * std::log(rp.freq_base));
        };
        pc.corr0 = std::max(0.0f, std::floor(corr_dim(rp.beta_fast)));
        pc.corr1 = std::min((float)(n_rot - 1), std::ceil(corr_dim(rp.beta_slow)));
        pc.mscale *= 1.0f + 0.1f * std::log(1.0f / rp.freq_scale);
    }
    // Whole rows per dispatch, as many as one binding holds.
    const int64_t per = std::min<int64_t>((int64_t)items_per_binding(ctx, row_bytes),
                                          (int64_t)(UINT32_MAX / ((uint64_t)n_heads * (n_rot / 2))));
    if (per < 1)
        throw Error(strprintf("%s: a rope row of %lld floats does not fit one binding", ctx.name().c_str(),
                              (long long)(row_bytes / 4)));
    const Pipeline& p = ctx.pipeline({"rope", 2, sizeof(RopePush), {k_eltwise_threads}});
    for (int64_t r0 = 0; r0 < n_rows; r0 += per) {
        const int64_t nr = std::min(per, n_rows - r0);
        const Binding bx =
            seq.bind(x.sub((uint64_t)r0 * row_bytes, (uint64_t)(nr - 1) * row_bytes + last_row), Access::ReadWrite);
        const Binding bp = seq.bind(pos_dev.sub((uint64_t)r0 * 4, (uint64_t)nr * 4), Access::Read);
        pc.n_rows = u32(nr);
        pc.x_off = bx.shift_elems(4);
        pc.pos_off = bp.shift_elems(4);
        const uint64_t threads = (uint64_t)nr * n_heads * (n_rot / 2);
        uint32_t gx, gy;
        seq.grid((threads + k_eltwise_threads - 1) / k_eltwise_threads, &gx, &gy);
        seq.dispatch(p, {bx, bp}, &pc, sizeof pc, gx, gy);
    }
}

void softmax(Sequence& seq, const BufferView& x, int64_t n, int64_t n_rows, const BufferView& out) {
    Context& ctx = seq.context();
    YITI_ASSERT(n > 0 && n_rows > 0);
    YITI_ASSERT(x.size >= (uint64_t)n * n_rows * 4 && out.size >= (uint64_t)n * n_rows * 4);
    const int64_t rows_per = (int64_t)items_per_binding(ctx, (uint64_t)n * 4);
    if (rows_per < 1)
        throw Error(strprintf("%s: a softmax row of %lld floats does not fit one binding", ctx.name().c_str(),
                              (long long)n));
    const Pipeline& p = ctx.pipeline({"softmax", 2, sizeof(SoftmaxPush), {k_norm_threads}});
    for (int64_t r0 = 0; r0 < n_rows; r0 += rows_per) {
        const int64_t nr = std::min(rows_per, n_rows - r0);
        const uint64_t off = (uint64_t)r0 * n * 4, bytes = (uint64_t)nr * n * 4;
        const Binding bx = seq.bind(x.sub(off, bytes), Access::Read);
        const Binding bo = seq.bind(out.sub(off, bytes), Access::Write);
        SoftmaxPush pc{u32(n), u32(nr), bx.shift_elems(4), bo.shift_elems(4)};
        uint32_t gx, gy;
        seq.grid((uint64_t)nr, &gx, &gy);
        seq.dispatch(p, {bx, bo}, &pc, sizeof pc, gx, gy);
    }
}

const KVStorage::Layer& KVStorage::layer(int il) const {
    for (const Layer& l : layers)
        if (l.il == il) return l;
    YITI_ASSERT(!"layer not held by this KV storage");
    return layers.front();
}

KVStorage alloc_kv_storage(Context& ctx, const kv::KVLayout& layout, int n_blocks,
                           const std::vector<int>& layers) {
    if (layout.type != DType::F16 && layout.type != DType::F32)
        throw Error(
            strprintf("%s: no Vulkan KV cache of type %s", ctx.name().c_str(), dtype_name(layout.type)));
    YITI_ASSERT(n_blocks > 0 && layout.block_size > 0 && layout.k_dim > 0 && layout.v_dim >= 0);
    KVStorage s;
    s.layout = layout;
    s.n_blocks = n_blocks;
    const uint64_t esz = dtype_info(layout.type).type_size;
    const uint64_t slots = (uint64_t)n_blocks * layout.block_size;
    const uint64_t limit = std::min(ctx.limits().max_storage_range, ctx.limits().max_alloc);
    for (int64_t dim : {layout.k_dim, layout.v_dim})
        if (slots * dim * esz > limit)
            throw Error(strprintf("%s: a layer's KV storage (%llu bytes) exceeds one binding (%llu bytes)",
                                  ctx.name().c_str(), (unsigned long long)(slots * dim * esz),
                                  (unsigned long long)limit));
    for (int il : layers) {
        YITI_ASSERT(il >= 0 && il < layout.n_layer);
        KVStorage::Layer l;
        l.il = il;
        l.k = ctx.alloc(slots * layout.k_dim * esz, "KV cache K");
        if (layout.v_dim > 0) l.v = ctx.alloc(slots * layout.v_dim * esz, "KV cache V");
        s.layers.push_back(std::move(l));
    }
    return s;
}

int32_t kv_slot(const kv::SeqKV& seq, int block_size, int64_t pos) {
    const int64_t bi = pos / block_size;
    YITI_ASSERT(pos >= 0 && bi < (int64_t)seq.blocks.size());
    return (int32_t)((int64_t)seq.blocks[bi] * block_size + pos % block_size);
}

void kv_store(Sequence& seq, const KVStorage& kv, int il, const BufferView& k, const BufferView& v,
              int64_t n_tok, const int32_t* slots, const BufferView& slots_dev) {
    Context& ctx = seq.context();
    YITI_ASSERT(n_tok > 0 && slots_dev.size >= (uint64_t)n_tok * 4 && slots_dev.offset % 4 == 0);
    const KVStorage::Layer& l = kv.layer(il);
    const int64_t n_slots = (int64_t)kv.n_blocks * kv.layout.block_size;
    for (int64_t t = 0; t < n_tok; ++t) YITI_ASSERT(slots[t] >= 0 && slots[t] < n_slots);
    seq.upload(slots_dev.sub(0, (uint64_t)n_tok * 4), slots, (uint64_t)n_tok * 4);
    const bool f16 = kv.layout.type == DType::F16;
    const uint32_t esz = f16 ? 2 : 4;
    const Pipeline& p =
        ctx.pipeline({f16 ? "kv_store_f16" : "kv_store_f32", 3, sizeof(KVStorePush), {k_eltwise_threads}});
    const Binding bs = seq.bind(slots_dev.sub(0, (uint64_t)n_tok * 4), Access::Read);
    const auto store = [&](const BufferView& src, int64_t dim, const Buffer& dst) {
        const uint64_t bytes = (uint64_t)n_tok * dim * 4;
        YITI_ASSERT(src.size >= bytes && src.offset % 4 == 0);
        if (bytes > ctx.limits().max_storage_range || (uint64_t)n_tok * dim > UINT32_MAX)
            throw Error(strprintf("%s: %lld K/V rows of %lld floats do not fit one binding",
                                  ctx.name().c_str(), (long long)n_tok, (long long)dim));
        const Binding bsrc = seq.bind(src.sub(0, bytes), Access::Read);
        const Binding bd = seq.bind(dst.view(), Access::Write);
        KVStorePush pc{u32(dim), u32(n_tok), bsrc.shift_elems(4), bs.shift_elems(4), bd.shift_elems(esz)};
        uint32_t gx, gy;
        seq.grid(((uint64_t)n_tok * dim + k_eltwise_threads - 1) / k_eltwise_threads, &gx, &gy);
        seq.dispatch(p, {bsrc, bs, bd}, &pc, sizeof pc, gx, gy);
    };
    store(k, kv.layout.k_dim, l.k);
    if (kv.layout.v_dim > 0) store(v, kv.layout.v_dim, l.v);
}

int64_t attention_meta_words(const std::vector<cpu::AttnSeq>& seqs, int block_size) {
    int64_t n = 0;
    for (const cpu::AttnSeq& sq : seqs) n += 2 * sq.n + (sq.pos0 + sq.n - 1) / block_size + 1;
    return n;
}

void attention(Sequence& seq, const cpu::AttnParams& ap, const KVStorage& kv, int il,
               const std::vector<cpu::AttnSeq>& seqs, const BufferView& q, const BufferView& out,
               const BufferView& meta_dev) {
    Context& ctx = seq.context();
    const int bs = kv.layout.block_size;
    const int n_rep = ap.n_head / ap.n_head_kv;
    YITI_ASSERT(n_rep * ap.n_head_kv == ap.n_head && ap.head_dim_k > 0 && ap.head_dim_v > 0);
    if (ap.head_dim_k > k_attn_max_dim || ap.head_dim_v > k_attn_max_dim)
        throw Error(strprintf("%s: attention heads of %lld / %lld values (at most %lld)", ctx.name().c_str(),
                              (long long)ap.head_dim_k, (long long)ap.head_dim_v, (long long)k_attn_max_dim));
    // The shader's shapes: heads up to 256 values take 4 output dimensions per thread and a 256-value
    // query copy (one pipeline for the usual sizes); larger ones as many as they need, the output
    // dimensions per thread rounded up to a multiple of 4 and the query copy to one of 64 values.
    const int64_t small_dim = (int64_t)k_attn_threads * k_attn_dims_per_thread;
    uint32_t dpt = k_attn_dims_per_thread, qmax = (uint32_t)small_dim;
    if (ap.head_dim_k > small_dim || ap.head_dim_v > small_dim) {
        const int64_t need = (ap.head_dim_v + k_attn_threads - 1) / k_attn_threads;
        dpt = (uint32_t)std::max<int64_t>(k_attn_dims_per_thread, (need + 3) / 4 * 4);
        qmax = (uint32_t)std::max<int64_t>(small_dim, (ap.head_dim_k + 63) / 64 * 64);
    }
    const bool v_in_k = kv.layout.v_dim == 0;
    YITI_ASSERT(kv.layout.k_dim == ap.n_head_kv * ap.head_dim_k || v_in_k);
    YITI_ASSERT(!v_in_k || (ap.n_head_kv == 1 && ap.head_dim_v <= ap.head_dim_k));
    YITI_ASSERT(v_in_k || kv.layout.v_dim == ap.n_head_kv * ap.head_dim_v);
    // meta: (position, table offset) per token, then the tables.
    int64_t n_tok = 0;
    for (const cpu::AttnSeq& sq : seqs) {
        YITI_ASSERT(sq.first == n_tok && sq.n > 0);  // the batch's tokens in order
        n_tok += sq.n;
    }
    YITI_ASSERT(n_tok > 0);
    std::vector<int32_t> meta((size_t)(2 * n_tok));
    for (const cpu::AttnSeq& sq : seqs) {
        const int64_t n_blk = (sq.pos0 + sq.n - 1) / bs + 1;
        YITI_ASSERT(n_blk <= (int64_t)sq.kv->blocks.size());
        const int32_t table = (int32_t)meta.size();
        for (int64_t i = 0; i < sq.n; ++i) {
            meta[(size_t)(2 * (sq.first + i))] = (int32_t)(sq.pos0 + i);
            meta[(size_t)(2 * (sq.first + i) + 1)] = table;
        }
        for (int64_t b = 0; b < n_blk; ++b) {
            YITI_ASSERT(sq.kv->blocks[(size_t)b] >= 0 && sq.kv->blocks[(size_t)b] < kv.n_blocks);
            meta.push_back(sq.kv->blocks[(size_t)b]);
        }
    }
    const uint64_t meta_bytes = meta.size() * 4;
    YITI_ASSERT((int64_t)meta.size() == attention_meta_words(seqs, bs));
    YITI_ASSERT(meta_dev.size >= meta_bytes && meta_dev.offset % 4 == 0);
    seq.upload(meta_dev.sub(0, meta_bytes), meta.data(), meta_bytes);
    const uint64_t q_bytes = (uint64_t)n_tok * ap.n_head * ap.head_dim_k * 4;
    const uint64_t o_bytes = (uint64_t)n_tok * ap.n_head * ap.head_dim_v * 4;
    YITI_ASSERT(q.size >= q_bytes && out.size >= o_bytes && q.offset % 4 == 0 && out.offset % 4 == 0);
    if (std::max({q_bytes, o_bytes, meta_bytes}) > ctx.limits().max_storage_range)
        throw Error(strprintf("%s: an attention batch of %lld tokens does not fit one binding",
                              ctx.name().c_str(), (long long)n_tok));
    const KVStorage::Layer& l = kv.layer(il);
    const bool f16 = kv.layout.type == DType::F16;
    const uint32_t esz = f16 ? 2 : 4;
    const Pipeline& p = ctx.pipeline({f16 ? "attention_f16" : "attention_f32",
                                      5,
                                      sizeof(AttnPush),
                                      {k_attn_threads, dpt, qmax}});
    const Binding bq = seq.bind(q.sub(0, q_bytes), Access::Read);
    const Binding bk = seq.bind(l.k.view(), Access::Read);
    const Binding bv = seq.bind(v_in_k ? l.k.view() : l.v.view(), Access::Read);
    const Binding bo = seq.bind(out.sub(0, o_bytes), Access::Write);
    const Binding bm = seq.bind(meta_dev.sub(0, meta_bytes), Access::Read);
    AttnPush pc{};
    pc.n_tok = u32(n_tok);
    pc.n_head = (uint32_t)ap.n_head;
    pc.n_rep = (uint32_t)n_rep;
    pc.hd_k = u32(ap.head_dim_k);
    pc.hd_v = u32(ap.head_dim_v);
    pc.k_dim = u32(kv.layout.k_dim);
    pc.v_dim = u32(v_in_k ? kv.layout.k_dim : kv.layout.v_dim);
    pc.v_head = v_in_k ? 0 : 1;
    pc.block_size = (uint32_t)bs;
    pc.q_off = bq.shift_elems(4);
    pc.k_off = bk.shift_elems(esz);
    pc.v_off = bv.shift_elems(esz);
    pc.out_off = bo.shift_elems(4);
    pc.meta_off = bm.shift_elems(4);
    pc.scale = ap.scale;
    uint32_t gx, gy;
    seq.grid((uint64_t)n_tok * ap.n_head, &gx, &gy);
    seq.dispatch(p, {bq, bk, bv, bo, bm}, &pc, sizeof pc, gx, gy);
}

}  // namespace yiti::vk
