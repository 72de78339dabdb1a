#include "vulkan/ops_moe.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "vulkan/ops.h"
#include "vulkan/ops_internal.h"

namespace yiti::vk {

using namespace detail;

namespace {

// Workgroup shapes (specialization constants of the shaders).
constexpr uint32_t k_route_threads = 256;
constexpr int k_route_max_expert = 1024;  // moe_route.comp's MAX_EXPERT
constexpr int k_route_max_k = 64;         // moe_route.comp's MAX_K
constexpr uint32_t k_id_threads = 64;     // moe_mul_mv: threads per workgroup
constexpr uint32_t k_id_rows = 2;         // moe_mul_mv: weight rows per workgroup
constexpr uint32_t k_combine_threads = 256;

struct RoutePush {
    uint32_t n_tok, n_expert, k, sigmoid, renorm, has_bias, n_groups, n_groups_used, logits_off, bias_off,
        ids_off, w_off;
    float scale;
};
struct MulIdPush {
    uint32_t ne0, n_out, n_pairs, row_groups, e0, n_experts, k, slot0, per_slot, w_off, w_stride, ids_off,
        x_off, y_off;
};
struct CombinePush {
    uint32_t n, n_tok, k, accumulate, y_off, w_off, out_off;
};

// The largest number of items of `item_bytes` one binding holds, at least one (else Error naming
// what does not fit).
int64_t per_binding(const Context& ctx, uint64_t item_bytes, const char* what) {
    const int64_t n = (int64_t)items_per_binding(ctx, item_bytes);
    if (n < 1)
        throw Error(strprintf("%s: %s (%llu bytes) does not fit one binding (%llu bytes)", ctx.name().c_str(),
                              what, (unsigned long long)item_bytes,
                              (unsigned long long)ctx.limits().max_storage_range));
    return n;
}

}  // namespace

Experts upload_experts(Context& ctx, const Tensor& w) {
    require_product_type(ctx, w);
    YITI_ASSERT(w.ne[3] == 1 && w.data && w.ne[2] >= 1 && w.ne[2] <= INT32_MAX);
    require_whole_blocks(ctx, w);
    Experts x;
    x.type = w.type;
    x.n_in = w.ne[0];
    x.n_out = w.ne[1];
    x.n_expert = (int)w.ne[2];
    x.row_bytes = row_size(w.type, w.ne[0]);
    x.expert_bytes = x.row_bytes * (size_t)x.n_out;
    YITI_ASSERT(dtype_info(w.type).type_size % weight_unit_bytes(w.type) == 0);
    const uint64_t limit = std::min(ctx.limits().max_storage_range, ctx.limits().max_alloc);
    const int64_t per_piece = std::min<int64_t>(x.n_expert, (int64_t)(limit / x.expert_bytes));
    if (per_piece < 1)
        throw Error(
            strprintf("%s: an expert of '%s' (%zu bytes) exceeds the storage-buffer range (%llu bytes)",
                      ctx.name().c_str(), w.name.c_str(), x.expert_bytes, (unsigned long long)limit));
    std::vector<uint8_t> packed;
    for (int e0 = 0; e0 < x.n_expert; e0 += (int)per_piece) {
        Experts::Piece p;
        p.e0 = e0;
        p.n_experts = (int)std::min<int64_t>(per_piece, x.n_expert - e0);
        const uint64_t bytes = (uint64_t)p.n_experts * x.expert_bytes;
        p.buf = ctx.alloc(bytes, w.name.c_str());
        const uint8_t* src = (const uint8_t*)w.data + (size_t)e0 * w.nb[2];
        if (w.nb[1] == x.row_bytes && w.nb[2] == x.expert_bytes) {
            ctx.upload(p.buf.view(), src, bytes);
        } else {  // strided rows or experts: gathered on the host first
            packed.resize(bytes);
            for (int e = 0; e < p.n_experts; ++e)
                for (int64_t r = 0; r < x.n_out; ++r)
                    memcpy(&packed[e * x.expert_bytes + r * x.row_bytes], src + e * w.nb[2] + r * w.nb[1],
                           x.row_bytes);
            ctx.upload(p.buf.view(), packed.data(), bytes);
        }
        x.pieces.push_back(std::move(p));
    }
    return x;
}

void route(Sequence& seq, const RouteParams& rp, const BufferView& logits, const BufferView* bias,
           int64_t n_tok, int n_expert, const BufferView& ids, const BufferView& weights) {
    Context& ctx = seq.context();
    YITI_ASSERT(n_tok > 0 && rp.k > 0 && rp.k <= n_expert);
    if (n_expert > k_route_max_expert || rp.k > k_route_max_k)
        throw Error(strprintf("%s: routing %d experts, k = %d (at most %d experts, k %d)", ctx.name().c_str(),
                              n_expert, rp.k, k_route_max_expert, k_route_max_k));
    const uint64_t row = (uint64_t)n_expert * 4, out_row = (uint64_t)rp.k * 4;
    YITI_ASSERT(logits.size >= n_tok * row && ids.size >= n_tok * out_row && weights.size >= n_tok * out_row);
    YITI_ASSERT(logits.offset % 4 == 0 && ids.offset % 4 == 0 && weights.offset % 4 == 0);
    YITI_ASSERT(!bias || (bias->size >= row && bias->offset % 4 == 0));
    const bool grouped = rp.n_groups > 1 && rp.n_groups_used > 0 && rp.n_groups_used < rp.n_groups &&
                         n_expert % rp.n_groups == 0;
    const int64_t per = std::min(per_binding(ctx, row, "a row of router logits"),
                                 per_binding(ctx, out_row, "a row of expert ids"));
    const Pipeline& p = ctx.pipeline({"moe_route", 4, sizeof(RoutePush), {k_route_threads}});
    // Without a bias the logits stand in for its binding (not read).
    const Binding bb = seq.bind(bias ? bias->sub(0, row) : logits.sub(0, row), Access::Read);
    for (int64_t t0 = 0; t0 < n_tok; t0 += per) {
        const int64_t nt = std::min(per, n_tok - t0);
        const Binding bl = seq.bind(logits.sub(t0 * row, nt * row), Access::Read);
        const Binding bi = seq.bind(ids.sub(t0 * out_row, nt * out_row), Access::Write);
        const Binding bw = seq.bind(weights.sub(t0 * out_row, nt * out_row), Access::Write);
        RoutePush pc{};
        pc.n_tok = u32(nt);
        pc.n_expert = (uint32_t)n_expert;
        pc.k = (uint32_t)rp.k;
        pc.sigmoid = rp.sigmoid;
        pc.renorm = rp.renorm;
        pc.has_bias = bias != nullptr;
        pc.n_groups = grouped ? (uint32_t)rp.n_groups : 0;
        pc.n_groups_used = grouped ? (uint32_t)rp.n_groups_used : 0;
        pc.logits_off = bl.shift_elems(4);
        pc.bias_off = bb.shift_elems(4);
        pc.ids_off = bi.shift_elems(4);
        pc.w_off = bw.shift_elems(4);
        pc.scale = rp.scale;
        uint32_t gx, gy;
        seq.grid((uint64_t)nt, &gx, &gy);
        seq.dispatch(p, {bl, bb, bi, bw}, &pc, sizeof pc, gx, gy);
    }
}

void mul_mat_id(Sequence& seq, const Experts& w, const BufferView& x, bool x_per_slot, const BufferView& ids,
                int64_t n_tok, int k, const BufferView& y) {
    Context& ctx = seq.context();
    YITI_ASSERT(n_tok > 0 && k > 0);
    const int64_t n_pairs = n_tok * k;
    const uint64_t x_row = (uint64_t)w.n_in * 4, y_row = (uint64_t)w.n_out * 4;
    YITI_ASSERT(x.size >= (uint64_t)(x_per_slot ? n_pairs : n_tok) * x_row &&
                y.size >= (uint64_t)n_pairs * y_row && ids.size >= (uint64_t)n_pairs * 4);
    YITI_ASSERT(x.offset % 4 == 0 && y.offset % 4 == 0 && ids.offset % 4 == 0);
    // Pairs per dispatch: their y rows, ids and x rows each fit one binding. With a shared x, c
    // pairs from any slot on span at most (c - 1) / k + 2 tokens: c = (T - 1) k + 1 pairs span at
    // most T tokens.
    const int64_t x_items = per_binding(ctx, x_row, "an activation row of an expert product");
    int64_t per =
        std::min({per_binding(ctx, y_row, "an output row of an expert product"),
                  per_binding(ctx, 4, "an expert id"), x_per_slot ? x_items : (x_items - 1) * k + 1});
    // The grid (pairs x row groups) stays within 65535 x 65535 workgroups.
    const int64_t row_groups = (w.n_out + k_id_rows - 1) / k_id_rows;
    per = std::min<int64_t>(per, (int64_t)ctx.max_group_count_x() * 65535 / row_groups);
    YITI_ASSERT(per >= 1);
    const Pipeline& p = ctx.pipeline(
        {std::string("moe_mul_mv_") + type_suffix(w.type), 4, sizeof(MulIdPush), {k_id_threads, k_id_rows}});
    const uint32_t unit = weight_unit_bytes(w.type);
    for (int64_t q0 = 0; q0 < n_pairs; q0 += per) {
        const int64_t nq = std::min(per, n_pairs - q0);
        const Binding bi = seq.bind(ids.sub((uint64_t)q0 * 4, (uint64_t)nq * 4), Access::Read);
        const int64_t xr0 = x_per_slot ? q0 : q0 / k, xr1 = x_per_slot ? q0 + nq : (q0 + nq - 1) / k + 1;
        const Binding bx =
            seq.bind(x.sub((uint64_t)xr0 * x_row, (uint64_t)(xr1 - xr0) * x_row), Access::Read);
        const Binding by = seq.bind(y.sub((uint64_t)q0 * y_row, (uint64_t)nq * y_row), Access::Write);
        for (const Experts::Piece& piece : w.pieces) {
            const Binding bw = seq.bind(piece.buf.view(), Access::Read);
            MulIdPush pc{};
            pc.ne0 = u32(w.n_in);
            pc.n_out = u32(w.n_out);
            pc.n_pairs = u32(nq);
            pc.row_groups = u32(row_groups);
            pc.e0 = (uint32_t)piece.e0;
            pc.n_experts = (uint32_t)piece.n_experts;
            pc.k = (uint32_t)k;
            pc.slot0 = (uint32_t)(q0 % k);
            pc.per_slot = x_per_slot;
            pc.w_off = bw.shift_elems(unit);
            pc.w_stride = u32((int64_t)(w.row_bytes / unit));
            pc.ids_off = bi.shift_elems(4);
            pc.x_off = bx.shift_elems(4);
            pc.y_off = by.shift_elems(4);
            uint32_t gx, gy;
            seq.grid((uint64_t)nq * row_groups, &gx, &gy);
            seq.dispatch(p, {bw, bi, bx, by}, &pc, sizeof pc, gx, gy);
        }
    }
}

void moe_combine(Sequence& seq, const BufferView& y, const BufferView& weights, int64_t n_tok, int k,
                 int64_t n, const BufferView& out, bool accumulate) {
    Context& ctx = seq.context();
    YITI_ASSERT(n_tok > 0 && k > 0 && n > 0);
    const uint64_t y_row = (uint64_t)k * n * 4, o_row = (uint64_t)n * 4, w_row = (uint64_t)k * 4;
    YITI_ASSERT(y.size >= n_tok * y_row && out.size >= n_tok * o_row && weights.size >= n_tok * w_row);
    YITI_ASSERT(y.offset % 4 == 0 && out.offset % 4 == 0 && weights.offset % 4 == 0);
    const int64_t per = std::min({per_binding(ctx, y_row, "a token's expert outputs"),
                                  per_binding(ctx, o_row, "a token's output row"),
                                  per_binding(ctx, w_row, "a token's expert weights")});
    const Pipeline& p = ctx.pipeline({"moe_combine", 3, sizeof(CombinePush), {k_combine_threads}});
    for (int64_t t0 = 0; t0 < n_tok; t0 += per) {
        const int64_t nt = std::min(per, n_tok - t0);
        const Binding by = seq.bind(y.sub(t0 * y_row, nt * y_row), Access::Read);
        const Binding bw = seq.bind(weights.sub(t0 * w_row, nt * w_row), Access::Read);
        const Binding bo =
            seq.bind(out.sub(t0 * o_row, nt * o_row), accumulate ? Access::ReadWrite : Access::Write);
        CombinePush pc{u32(n),           u32(nt),           (uint32_t)k,
                       accumulate,       by.shift_elems(4), bw.shift_elems(4),
                       bo.shift_elems(4)};
        uint32_t gx, gy;
        seq.grid(((uint64_t)nt * n + k_combine_threads - 1) / k_combine_threads, &gx, &gy);
        seq.dispatch(p, {by, bw, bo}, &pc, sizeof pc, gx, gy);
    }
}

}  // namespace yiti::vk
