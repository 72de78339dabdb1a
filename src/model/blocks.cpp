#include "model/blocks.h"

#include <algorithm>
#include <cmath>

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

Pass::~Pass() {
    if (done_) return;
    try {
        rt_.end_pass();
    } catch (...) {  // the pass failed already; that error is the one that propagates
    }
}

void prefetch_next(runtime::Runtime& rt, const NextWeights& next, int64_t n_tokens) {
    const Tensor* w[4];
    size_t n = 0;
    for (const Tensor* t : next.w)
        if (t && t->valid() && t->device.kind == DeviceKind::CPU) w[n++] = t;
    if (n > 0) rt.cpu().prefetch_next(w, n, n_tokens, next.glu);
}

Act rms_norm(runtime::Runtime& rt, const Act& x, int64_t ld_x, const Tensor& w, int64_t n, int64_t E, float eps) {
    runtime::Backend& be = rt.backend(x.device);
    Act out = be.alloc(n * E);
    be.rms_norm(x, ld_x, w, n, E, eps, out, E);
    return out;
}

void rms_norm_inplace(runtime::Runtime& rt, const Act& x, int64_t ld, const Tensor& w, int64_t n, int64_t E, float eps) {
    rt.backend(x.device).rms_norm(x, ld, w, n, E, eps, x, ld);
}

void add_residual(runtime::Runtime& rt, const Act& x, const Act& y, int64_t n) {
    rt.backend(x.device).add(x, rt.to(x.device, y), n);
}

Act product(runtime::Runtime& rt, const Tensor& w, const Act& x, int64_t n) {
    runtime::Backend& be = rt.backend(w.device);
    Act y = be.alloc(n * w.ne[1]);
    be.matmul(w, rt.to(w.device, x), n, y);
    return y;
}

void products(runtime::Runtime& rt, const Tensor* const* ws, size_t n_w, const Act& x, int64_t n, Act* ys) {
    runtime::Job jobs[4];
    YITI_ASSERT(n_w <= 4);
    bool one_device = true;
    for (size_t i = 0; i < n_w; ++i) one_device = one_device && ws[i]->device == ws[0]->device;
    if (!one_device) {
        for (size_t i = 0; i < n_w; ++i) ys[i] = product(rt, *ws[i], x, n);
        return;
    }
    runtime::Backend& be = rt.backend(ws[0]->device);
    const Act xd = rt.to(ws[0]->device, x);
    for (size_t i = 0; i < n_w; ++i) {
        ys[i] = be.alloc(n * ws[i]->ne[1]);
        jobs[i] = runtime::Job{ws[i], xd, n, ys[i]};
    }
    be.matmul_jobs(jobs, n_w);
}

Act ffn_swiglu(runtime::Runtime& rt, const Tensor& gate, const Tensor& up, const Tensor& down, const Act& x, int64_t n,
               const NextWeights& next) {
    const int64_t n_ff = gate.ne[1];
    Act g, u;
    prefetch_next(rt, NextWeights{{&down}}, n);
    if (gate.device == up.device) {
        // Gate and up share their input: one job list (g = silu(g) * u inside it).
        runtime::Backend& be = rt.backend(gate.device);
        const Act xd = rt.to(gate.device, x);
        g = be.alloc(n * n_ff);
        u = be.alloc(n * n_ff);
        const runtime::Job jobs[2] = {{&gate, xd, n, g}, {&up, xd, n, u}};
        be.matmul_glu_jobs(jobs, 2);
    } else {
        g = product(rt, gate, x, n);
        u = product(rt, up, x, n);
        rt.backend(g.device).silu_mul(g, rt.to(g.device, u), n * n_ff);
    }
    prefetch_next(rt, next, n);
    return product(rt, down, g, n);
}

Act moe_ffn(runtime::Runtime& rt, const MoeWeights& w, const runtime::RouterParams& rp, const Act& x, int64_t n_tok,
            const NextWeights& next) {
    const Device de = w.gate_exps->device;
    YITI_ASSERT(w.up_exps->device == de && w.down_exps->device == de);
    const int64_t E = w.gate_exps->ne[0];
    runtime::MoeArgs a;
    a.logits = rt.to(de, product(rt, *w.gate_inp, x, n_tok));
    a.router = rp;
    a.gate_exps = w.gate_exps;
    a.up_exps = w.up_exps;
    a.down_exps = w.down_exps;
    const bool shared = w.shared_gate != nullptr;
    const bool shared_here = shared && w.shared_gate->device == de && w.shared_up->device == de &&
                             w.shared_down->device == de;
    if (shared_here) {
        a.shared_gate = w.shared_gate;
        a.shared_up = w.shared_up;
        a.shared_down = w.shared_down;
    }
    a.x = rt.to(de, x);
    a.n_tok = n_tok;
    runtime::Backend& be = rt.backend(de);
    a.out = be.alloc(n_tok * E);
    for (int i = 0; i < 4; ++i) a.next[i] = next.w[i];
    // The shared expert on a device of its own first: it needs no routing and can run meanwhile.
    Act sh;
    if (shared && !shared_here) sh = ffn_swiglu(rt, *w.shared_gate, *w.shared_up, *w.shared_down, x, n_tok);
    be.moe(a);
    if (!sh.valid()) return a.out;
    add_residual(rt, sh, a.out, n_tok * E);
    return sh;
}

void output_logits(runtime::Runtime& rt, const Tensor& norm, const Tensor& output, float eps, const Act& x,
                   int64_t n_embd, const PassInfo& pi, float* logits) {
    const int64_t n_out = (int64_t)pi.out_rows.size();
    if (n_out == 0) return;
    runtime::Backend& bx = rt.backend(x.device);
    Act xn = bx.alloc(n_out * n_embd);
    if (n_out == pi.n_tok) {  // every row (prompt scoring, embeddings)
        bx.rms_norm(x, n_embd, norm, n_out, n_embd, eps, xn, n_embd);
    } else {
        for (int64_t r = 0; r < n_out; ++r)
            bx.rms_norm(x.at(pi.out_rows[(size_t)r] * n_embd, n_embd), n_embd, norm, 1, n_embd, eps,
                        xn.at(r * n_embd, n_embd), n_embd);
    }
    const int64_t V = output.ne[1];
    runtime::Backend& bo = rt.backend(output.device);
    if (output.device.kind == DeviceKind::CPU) {
        Act y;
        y.host = logits;
        y.n = n_out * V;
        bo.matmul(output, rt.to(output.device, xn), n_out, y);
    } else {
        Act y = bo.alloc(n_out * V);
        bo.matmul(output, rt.to(output.device, xn), n_out, y);
        bo.download(y, logits, n_out * V);  // delivered when the pass ends
    }
}

}  // namespace yiti::model
