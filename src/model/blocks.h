// Building blocks shared by architectures: attention over the paged cache, dense and MoE FFNs.
#pragma once
#include <vector>

#include "model/model.h"

namespace yiti::model {

// Per-pass scratch and the mapping from batch rows to sequences / positions.
struct PassInfo {
    int64_t n_tok = 0;
    std::vector<int32_t> pos;          // [n_tok] position of each token in its sequence
    std::vector<cpu::AttnSeq> attn;    // one per sequence
    std::vector<int64_t> out_rows;     // batch rows whose logits are returned, in order
};
PassInfo make_pass_info(const Batch& batch);

// Writes rows [n_tok][dim] of K (and V) for layer il into the cache at each token's position.
void store_kv(kv::KVCache& cache, int il, const Batch& batch, const PassInfo& pi, const float* k, const float* v);

// SwiGLU FFN: out = down(silu(gate(x)) * up(x)); x: [n][n_embd].
// Up to four weights the next products read (decode streams them: a thread with nothing to do
// prefetches its share, see Backend::prefetch_next). Empty: no hint.
struct NextWeights {
    const Tensor* w[4] = {nullptr, nullptr, nullptr, nullptr};
    bool glu = false;  // (gate, up) pairs
};
void prefetch_next(runtime::Runtime& rt, const NextWeights& next, int64_t n_tokens);

// Row-wise RMS norm of n rows of E (rows ld_x / ld_out floats apart; in place allowed) and the
// residual add x += y over n floats: on the pool for prompt batches, inline for a few rows.
void rms_norm_rows(runtime::Runtime& rt, const float* x, size_t ld_x, const float* w, int64_t n, int64_t E, float eps,
                   float* out, size_t ld_out);
void add_inplace(runtime::Runtime& rt, float* x, const float* y, int64_t n);

// SwiGLU FFN; `next`: what the products after it read (hinted before its down projection).
void ffn_swiglu(runtime::Runtime& rt, const Tensor& gate, const Tensor& up, const Tensor& down, const float* x,
                int64_t n, float* out, const NextWeights& next = {});

// Routed experts: each token's chosen experts and weights are given; tokens are grouped by expert
// so each expert's weights are read once per pass. out is overwritten.
struct ExpertChoice {
    std::vector<int32_t> ids;      // [n_tok][k]
    std::vector<float> weights;    // [n_tok][k]
    int k = 0;
};
// With a shared expert (DeepSeek), out = shared FFN + routed experts, all gate/up products in one
// job list and all down products in another.
struct SharedExpert {
    const Tensor* gate;
    const Tensor* up;
    const Tensor* down;
};
void moe_ffn(runtime::Runtime& rt, const Tensor& gate_exps, const Tensor& up_exps, const Tensor& down_exps,
             const ExpertChoice& choice, const float* x, int64_t n_tok, int64_t n_embd, float* out,
             const SharedExpert* shared = nullptr, const NextWeights& next = {});

// Expert selection from router logits [n_tok][n_expert]: scores by softmax or sigmoid; an optional
// per-expert bias added for choosing only (DeepSeek-V3's exp_probs_b); optional group-limited choice
// (keep the n_groups_used groups whose two best biased scores sum highest); top-k; the chosen scores
// optionally renormalized to sum 1, then multiplied by scale.
struct RouterParams {
    ExpertGating gating = ExpertGating::Softmax;
    int k = 0;
    const float* selection_bias = nullptr;  // [n_expert] or null
    bool renorm = false;
    float scale = 1.0f;
    int n_groups = 0;
    int n_groups_used = 0;
};
ExpertChoice route_experts(const float* logits, int64_t n_tok, int n_expert, const RouterParams& rp);

// Final norm and output projection for the rows that want logits.
void output_logits(runtime::Runtime& rt, const Tensor& norm, const Tensor& output, float eps, const float* x,
                   int64_t n_embd, const PassInfo& pi, float* logits);

}  // namespace yiti::model
