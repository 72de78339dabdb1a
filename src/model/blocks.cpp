#include "model/blocks.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "core/error.h"

namespace yiti::model {

PassInfo make_pass_info(const Batch& batch) {
    PassInfo pi;
    pi.n_tok = (int64_t)batch.tokens.size();
    pi.pos.resize((size_t)pi.n_tok);
    for (const BatchSeq& s : batch.seqs) {
        YITI_ASSERT(s.first >= 0 && s.first + s.n <= pi.n_tok && s.n > 0);
        const int32_t pos0 = s.kv->n_tokens;
        for (int64_t t = 0; t < s.n; ++t) pi.pos[(size_t)(s.first + t)] = pos0 + (int32_t)t;
        pi.attn.push_back(cpu::AttnSeq{s.kv, s.first, s.n, pos0});
        if (s.no_logits) continue;
        if (s.all_logits)
            for (int64_t t = 0; t < s.n; ++t) pi.out_rows.push_back(s.first + t);
        else pi.out_rows.push_back(s.first + s.n - 1);
    }
    return pi;
}

void store_kv(kv::KVCache& cache, int il, const Batch& batch, const PassInfo& pi, const float* k, const float* v) {
    const auto& L = cache.layout();
    for (const BatchSeq& s : batch.seqs) {
        for (int64_t t = 0; t < s.n; ++t) {
            const int64_t row = s.first + t;
            const int32_t pos = pi.pos[(size_t)row];
            cpu::store_kv_row(L.type, k + row * L.k_dim, cache.k_row(il, *s.kv, pos), L.k_dim);
            if (v && L.v_dim) cpu::store_kv_row(L.type, v + row * L.v_dim, cache.v_row(il, *s.kv, pos), L.v_dim);
        }
    }
}

void rms_norm_rows(runtime::Runtime& rt, const float* x, size_t ld_x, const float* w, int64_t n, int64_t E, float eps,
                   float* out, size_t ld_out) {
    auto rows = [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) cpu::rms_norm(x + (size_t)t * ld_x, w, E, eps, out + (size_t)t * ld_out);
    };
    if (n * E < 16384) rows(0, n);
    else rt.pool().parallel_for(n, std::max<int64_t>(1, 4096 / E), rows);
}

void add_inplace(runtime::Runtime& rt, float* x, const float* y, int64_t n) {
    auto add = [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) x[i] += y[i];
    };
    if (n < 65536) add(0, n);
    else rt.pool().parallel_for(n, 16384, add);
}

void prefetch_next(runtime::Runtime& rt, const NextWeights& next, int64_t n_tokens) {
    cpu::MatmulJob jobs[4];
    size_t n = 0;
    for (const Tensor* w : next.w)
        if (w && w->valid()) jobs[n++] = cpu::MatmulJob{w, nullptr, n_tokens, nullptr};
    if (n > 0) rt.backend(jobs[0].w->device).prefetch_next(jobs, n, next.glu);
}

void ffn_swiglu(runtime::Runtime& rt, const Tensor& gate, const Tensor& up, const Tensor& down, const float* x,
                int64_t n, float* out, const NextWeights& next) {
    const int64_t n_ff = gate.ne[1];
    std::vector<float> g((size_t)(n * n_ff)), u((size_t)(n * n_ff));
    // Gate and up share their input: one quantization, one parallel region.
    const cpu::MatmulJob jobs[2] = {{&gate, x, n, g.data()}, {&up, x, n, u.data()}};
    prefetch_next(rt, NextWeights{{&down}}, n);
    if (gate.device == up.device) {
        rt.backend(gate.device).matmul_glu_jobs(jobs, 2);  // g = silu(g) * u inside the parallel region
    } else {
        rt.backend(gate.device).matmul(gate, x, n, g.data());
        rt.backend(up.device).matmul(up, x, n, u.data());
        cpu::silu_mul(g.data(), u.data(), n * n_ff);
    }
    prefetch_next(rt, next, n);
    rt.backend(down.device).matmul(down, g.data(), n, out);
}

ExpertChoice route_experts(const float* logits, int64_t n_tok, int n_expert, const RouterParams& rp) {
    const int k = rp.k;
    YITI_ASSERT(k > 0 && k <= n_expert);
    ExpertChoice c;
    c.k = k;
    c.ids.resize((size_t)(n_tok * k));
    c.weights.resize((size_t)(n_tok * k));
    std::vector<float> prob((size_t)n_expert), sel((size_t)n_expert);
    std::vector<int> idx((size_t)n_expert);
    const bool grouped = rp.n_groups > 1 && rp.n_groups_used > 0 && rp.n_groups_used < rp.n_groups &&
                         n_expert % rp.n_groups == 0;
    for (int64_t t = 0; t < n_tok; ++t) {
        const float* l = logits + t * n_expert;
        if (rp.gating == ExpertGating::Softmax) {
            std::copy(l, l + n_expert, prob.begin());
            cpu::softmax(prob.data(), n_expert);
        } else {
            for (int e = 0; e < n_expert; ++e) prob[(size_t)e] = 1.0f / (1.0f + std::exp(-l[e]));
        }
        for (int e = 0; e < n_expert; ++e) sel[(size_t)e] = prob[(size_t)e] + (rp.selection_bias ? rp.selection_bias[e] : 0.0f);
        if (grouped) {
            const int per = n_expert / rp.n_groups;
            std::vector<std::pair<float, int>> gscore;
            for (int g = 0; g < rp.n_groups; ++g) {
                std::vector<float> v(sel.begin() + g * per, sel.begin() + (g + 1) * per);
                std::partial_sort(v.begin(), v.begin() + std::min(2, per), v.end(), std::greater<float>());
                gscore.emplace_back(per >= 2 ? v[0] + v[1] : v[0], g);
            }
            std::sort(gscore.begin(), gscore.end(),
                      [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
            for (int r = rp.n_groups_used; r < rp.n_groups; ++r)
                for (int e = 0; e < per; ++e) sel[(size_t)(gscore[(size_t)r].second * per + e)] = -INFINITY;
        }
        std::iota(idx.begin(), idx.end(), 0);
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
            return sel[(size_t)a] > sel[(size_t)b] || (sel[(size_t)a] == sel[(size_t)b] && a < b);
        });
        float sum = 0;
        for (int j = 0; j < k; ++j) sum += prob[(size_t)idx[(size_t)j]];
        for (int j = 0; j < k; ++j) {
            const float w = prob[(size_t)idx[(size_t)j]];
            c.ids[(size_t)(t * k + j)] = idx[(size_t)j];
            c.weights[(size_t)(t * k + j)] = (rp.renorm ? w / sum : w) * rp.scale;
        }
    }
    return c;
}

void moe_ffn(runtime::Runtime& rt, const Tensor& gate_exps, const Tensor& up_exps, const Tensor& down_exps,
             const ExpertChoice& choice, const float* x, int64_t n_tok, int64_t n_embd, float* out,
             const SharedExpert* shared, const NextWeights& next) {
    const int n_expert = (int)gate_exps.ne[2];
    const int64_t n_ff = gate_exps.ne[1];
    // Group (token, weight) pairs by expert.
    std::vector<std::vector<std::pair<int64_t, float>>> by_expert((size_t)n_expert);
    for (int64_t t = 0; t < n_tok; ++t)
        for (int j = 0; j < choice.k; ++j) {
            const int e = choice.ids[(size_t)(t * choice.k + j)];
            YITI_ASSERT(e >= 0 && e < n_expert);
            by_expert[(size_t)e].emplace_back(t, choice.weights[(size_t)(t * choice.k + j)]);
        }
    struct Active {
        int e;
        int64_t m;
        Tensor gate, up, down;
        std::vector<int32_t> rows;  // empty: all tokens in order
        size_t off_ff, off_out;     // into the g/u and y buffers
    };
    std::vector<Active> act;
    size_t ff_total = 0, out_total = 0;
    for (int e = 0; e < n_expert; ++e) {
        const auto& rows = by_expert[(size_t)e];
        if (rows.empty()) continue;
        Active a{e, (int64_t)rows.size(), gate_exps.slice2(e), up_exps.slice2(e), down_exps.slice2(e), {}, ff_total, out_total};
        bool identity = a.m == n_tok;
        for (int64_t r = 0; identity && r < a.m; ++r) identity = rows[(size_t)r].first == r;
        if (!identity)
            for (auto& rw : rows) a.rows.push_back((int32_t)rw.first);
        ff_total += (size_t)(a.m * n_ff);
        out_total += (size_t)(a.m * n_embd);
        act.push_back(std::move(a));
    }
    const int64_t n_ff_sh = shared ? shared->gate->ne[1] : 0;
    std::vector<float> g(ff_total + (size_t)(n_tok * n_ff_sh)), u(g.size()), y(out_total + (size_t)(shared ? n_tok * n_embd : 0));
    float* g_sh = g.data() + ff_total;
    float* u_sh = u.data() + ff_total;
    float* y_sh = y.data() + out_total;
    // Every expert's gate and up (and the shared expert's) in one job list over the one input.
    runtime::Backend& be = rt.backend(gate_exps.device);
    std::vector<cpu::MatmulJob> jobs;
    for (const Active& a : act) {
        cpu::MatmulJob jg{&a.gate, x, a.m, g.data() + a.off_ff};
        cpu::MatmulJob ju{&a.up, x, a.m, u.data() + a.off_ff};
        if (!a.rows.empty()) {
            jg.x_rows = ju.x_rows = a.rows.data();
            jg.x_n_rows = ju.x_n_rows = n_tok;
        }
        jobs.push_back(jg);
        jobs.push_back(ju);
    }
    if (shared) {
        jobs.push_back({shared->gate, x, n_tok, g_sh});
        jobs.push_back({shared->up, x, n_tok, u_sh});
    }
    {
        NextWeights down_next;  // the down projections (the first experts' ones)
        for (size_t i = 0; i < act.size() && i < 4; ++i) down_next.w[i] = &act[i].down;
        prefetch_next(rt, down_next, n_tok);
    }
    be.matmul_glu_jobs(jobs.data(), jobs.size());  // g = silu(g) * u, pair by pair
    prefetch_next(rt, next, n_tok);
    jobs.clear();
    for (const Active& a : act) jobs.push_back({&a.down, g.data() + a.off_ff, a.m, y.data() + a.off_out});
    if (shared) jobs.push_back({shared->down, g_sh, n_tok, y_sh});
    be.matmul_jobs(jobs.data(), jobs.size());
    std::fill(out, out + n_tok * n_embd, 0.0f);
    for (const Active& a : act) {
        const auto& rows = by_expert[(size_t)a.e];
        for (int64_t r = 0; r < a.m; ++r)
            cpu::axpy_f32(rows[(size_t)r].second, y.data() + a.off_out + r * n_embd, out + rows[(size_t)r].first * n_embd,
                          n_embd);
    }
    if (shared)
        for (int64_t i = 0; i < n_tok * n_embd; ++i) out[i] += y_sh[i];
}

void output_logits(runtime::Runtime& rt, const Tensor& norm, const Tensor& output, float eps, const float* x,
                   int64_t n_embd, const PassInfo& pi, float* logits) {
    const int64_t n_out = (int64_t)pi.out_rows.size();
    if (n_out == 0) return;
    std::vector<float> xn((size_t)(n_out * n_embd));
    if (n_out == pi.n_tok) {  // every row (prompt scoring, embeddings): in parallel
        rms_norm_rows(rt, x, (size_t)n_embd, (const float*)norm.data, n_out, n_embd, eps, xn.data(), (size_t)n_embd);
    } else {
        for (int64_t r = 0; r < n_out; ++r)
            cpu::rms_norm(x + pi.out_rows[(size_t)r] * n_embd, (const float*)norm.data, n_embd, eps, xn.data() + r * n_embd);
    }
    rt.backend(output.device).matmul(output, xn.data(), n_out, logits);
}

}  // namespace yiti::model
