// Building blocks shared by architectures, written once for every device: each runs on the
// backend of the device its weights live on (runtime/backend.h), moving activations there first
// when they live elsewhere (Runtime::to). 1-D F32 weights (norms, biases) go with the activation.
#pragma once
#include <vector>

#include "model/model.h"

namespace yiti::model {

using runtime::Act;

// The mapping from batch rows to sequences / positions.
struct PassInfo {
    int64_t n_tok = 0;
    std::vector<int32_t> pos;          // [n_tok] position of each token in its sequence
    std::vector<cpu::AttnSeq> attn;    // one per sequence
    std::vector<int64_t> out_rows;     // batch rows whose logits are returned, in order
    runtime::KVRows kv_rows() const { return {&attn, pos.data(), n_tok}; }
};
PassInfo make_pass_info(const Batch& batch);

// A forward pass on the runtime: begun on construction, ended (every device waited for) by
// finish() or, after an exception, by the destructor.
class Pass {
public:
    explicit Pass(runtime::Runtime& rt) : rt_(rt) { rt_.begin_pass(); }
    ~Pass();
    void finish() {
        done_ = true;
        rt_.end_pass();
    }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;

private:
    runtime::Runtime& rt_;
    bool done_ = false;
};

// Up to four weights the next products read (decode streams them: a thread with nothing to do
// prefetches its share, see Backend::prefetch_next). Empty: no hint.
struct NextWeights {
    const Tensor* w[4] = {nullptr, nullptr, nullptr, nullptr};
    bool glu = false;  // (gate, up) pairs
};
void prefetch_next(runtime::Runtime& rt, const NextWeights& next, int64_t n_tokens);

// Row-wise RMS norm of n rows of E floats (rows ld_x floats apart) into a new [n][E] on x's device.
Act rms_norm(runtime::Runtime& rt, const Act& x, int64_t ld_x, const Tensor& w, int64_t n, int64_t E, float eps);
// The same in place (rows ld floats apart).
void rms_norm_inplace(runtime::Runtime& rt, const Act& x, int64_t ld, const Tensor& w, int64_t n, int64_t E, float eps);
// x += y over n floats, on x's device.
void add_residual(runtime::Runtime& rt, const Act& x, const Act& y, int64_t n);

// y = W x for n rows, on W's device.
Act product(runtime::Runtime& rt, const Tensor& w, const Act& x, int64_t n);
// Products that share their input x (one job list per device): ys[i] = ws[i] x.
void products(runtime::Runtime& rt, const Tensor* const* ws, size_t n_w, const Act& x, int64_t n, Act* ys);

// SwiGLU FFN: out = down(silu(gate(x)) * up(x)); x: [n][n_embd]; `next`: what the products after
// it read (hinted before its down projection). The result is on down's device.
Act ffn_swiglu(runtime::Runtime& rt, const Tensor& gate, const Tensor& up, const Tensor& down, const Act& x, int64_t n,
               const NextWeights& next = {});

// Routed experts (the router's product, the choice and the expert FFNs on the experts' device),
// plus a shared expert (DeepSeek; fused into the routed experts' job lists where it is on their
// device, else computed on its own device). The result is on the experts' device, or the shared
// expert's when that differs.
struct MoeWeights {
    const Tensor* gate_inp = nullptr;  // [n_embd, n_expert]
    const Tensor* gate_exps = nullptr;
    const Tensor* up_exps = nullptr;
    const Tensor* down_exps = nullptr;
    const Tensor* shared_gate = nullptr;  // null: none
    const Tensor* shared_up = nullptr;
    const Tensor* shared_down = nullptr;
};
Act moe_ffn(runtime::Runtime& rt, const MoeWeights& w, const runtime::RouterParams& rp, const Act& x, int64_t n_tok,
            const NextWeights& next = {});

// Final norm and output projection for the rows that want logits (written to host memory).
void output_logits(runtime::Runtime& rt, const Tensor& norm, const Tensor& output, float eps, const Act& x,
                   int64_t n_embd, const PassInfo& pi, float* logits);

}  // namespace yiti::model
