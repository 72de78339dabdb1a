// The llama architecture (and its Mixtral-style MoE form) and qwen2, which differs by Q/K/V
// biases and NEOX-style rope.
#include <cmath>

#include "core/error.h"
#include "model/blocks.h"
#include "model/model.h"

namespace yiti::model {

namespace {

struct LlamaLayer {
    Tensor attn_norm;      // [n_embd]
    Tensor wq;             // [n_embd, n_head * head_dim]
    Tensor wk;             // [n_embd, n_head_kv * head_dim]
    Tensor wv;             // [n_embd, n_head_kv * head_dim_v]
    Tensor wo;             // [n_head * head_dim_v, n_embd]
    Tensor bq, bk, bv;     // qwen2: [n_head * head_dim], [n_head_kv * head_dim] x2
    Tensor ffn_norm;       // [n_embd]
    Tensor ffn_gate;       // [n_embd, n_ff]
    Tensor ffn_up;         // [n_embd, n_ff]
    Tensor ffn_down;       // [n_ff, n_embd]
    Tensor ffn_gate_inp;   // [n_embd, n_expert]
    Tensor ffn_gate_exps;  // [n_embd, n_ff_exp, n_expert]
    Tensor ffn_up_exps;    // [n_embd, n_ff_exp, n_expert]
    Tensor ffn_down_exps;  // [n_ff_exp, n_embd, n_expert]
};

class LlamaModel final : public Model {
public:
    LlamaModel(std::shared_ptr<gguf::File> f, const LoadOptions& opt) : Model(std::move(f), opt) {
        read_common_hparams();
        const bool qwen2 = hp_.arch == "qwen2";
        hp_.rope.style = qwen2 ? cpu::RopeStyle::Neox : cpu::RopeStyle::Normal;
        if (hp_.n_expert > 0) {
            hp_.expert_gating = ExpertGating::Softmax;
            hp_.expert_weights_norm = true;  // Mixtral renormalizes over the chosen experts
        }
        const int64_t E = hp_.n_embd, Dk = hp_.head_dim_k, Dv = hp_.head_dim_v;
        const int64_t V = hp_.n_vocab;
        tok_embd_ = tensor("token_embd.weight", {E, V});
        output_norm_ = tensor_f32("output_norm.weight", E);
        output_ = tensor("output.weight", {E, V}, false);
        if (!output_.valid()) output_ = tied_output(tok_embd_);
        layers_.resize((size_t)hp_.n_layer);
        for (int il = 0; il < hp_.n_layer; ++il) {
            LlamaLayer& L = layers_[(size_t)il];
            const std::string p = "blk." + std::to_string(il) + ".";
            L.attn_norm = tensor_f32(p + "attn_norm.weight", E);
            L.wq = tensor(p + "attn_q.weight", {E, hp_.n_head * Dk});
            L.wk = tensor(p + "attn_k.weight", {E, hp_.n_head_kv * Dk});
            L.wv = tensor(p + "attn_v.weight", {E, hp_.n_head_kv * Dv});
            L.wo = tensor(p + "attn_output.weight", {hp_.n_head * Dv, E});
            L.bq = tensor_f32(p + "attn_q.bias", hp_.n_head * Dk, qwen2);
            L.bk = tensor_f32(p + "attn_k.bias", hp_.n_head_kv * Dk, qwen2);
            L.bv = tensor_f32(p + "attn_v.bias", hp_.n_head_kv * Dv, qwen2);
            L.ffn_norm = tensor_f32(p + "ffn_norm.weight", E);
            if (hp_.n_expert > 0 && file_->find_tensor(p + "ffn_gate_inp.weight")) {
                const gguf::TensorInfo* ge = file_->find_tensor(p + "ffn_gate_exps.weight");
                const int64_t F = ge ? ge->ne[1] : hp_.n_ff;
                hp_.n_ff_exp = F;
                L.ffn_gate_inp = tensor(p + "ffn_gate_inp.weight", {E, hp_.n_expert});
                L.ffn_gate_exps = tensor(p + "ffn_gate_exps.weight", {E, F, hp_.n_expert});
                L.ffn_up_exps = tensor(p + "ffn_up_exps.weight", {E, F, hp_.n_expert});
                L.ffn_down_exps = tensor(p + "ffn_down_exps.weight", {F, E, hp_.n_expert});
                keep_together({&L.ffn_gate_exps, &L.ffn_up_exps, &L.ffn_down_exps});
            } else {
                if (hp_.n_ff <= 0)
                    throw Error(strprintf("model: %s: metadata '%s' is missing", file_->path().c_str(),
                                          key("feed_forward_length").c_str()));
                L.ffn_gate = tensor(p + "ffn_gate.weight", {E, hp_.n_ff});
                L.ffn_up = tensor(p + "ffn_up.weight", {E, hp_.n_ff});
                L.ffn_down = tensor(p + "ffn_down.weight", {hp_.n_ff, E});
            }
        }
    }

    std::vector<Device> layer_devices() const override {
        std::vector<Device> d;
        for (const LlamaLayer& L : layers_) d.push_back(L.wk.device);
        return d;
    }

    void forward(runtime::Runtime& rt, kv::KVCache& cache, const Batch& batch, float* logits) override {
        const PassInfo pi = make_pass_info(batch);
        const int64_t T = pi.n_tok, E = hp_.n_embd;
        const int64_t q_dim = hp_.n_head * hp_.head_dim_k, k_dim = hp_.n_head_kv * hp_.head_dim_k,
                      v_dim = hp_.n_head_kv * hp_.head_dim_v, o_dim = hp_.n_head * hp_.head_dim_v;
        Pass pass(rt);
        runtime::Backend& eb = rt.backend(tok_embd_.device);
        Act x = eb.alloc(T * E);
        eb.get_rows(tok_embd_, batch.tokens.data(), T, x);

        cpu::AttnParams ap;
        ap.n_head = hp_.n_head;
        ap.n_head_kv = hp_.n_head_kv;
        ap.head_dim_k = hp_.head_dim_k;
        ap.head_dim_v = hp_.head_dim_v;
        ap.scale = 1.0f / std::sqrt((float)hp_.head_dim_k);

        for (int il = 0; il < hp_.n_layer; ++il) {
            const LlamaLayer& L = layers_[(size_t)il];
            // The layer's attention runs where its keys are cached; the residual stream goes there.
            const Device d = L.wk.device;
            runtime::Backend& be = rt.backend(d);
            x = rt.to(d, x);
            const runtime::Runtime::Scope scratch(rt);  // the layer's scratch goes back at its end
            const Act cur = rms_norm(rt, x, E, L.attn_norm, T, E, hp_.rms_eps);
            Act qkv[3];
            const Tensor* w_qkv[3] = {&L.wq, &L.wk, &L.wv};
            prefetch_next(rt, NextWeights{{&L.wo}}, T);
            products(rt, w_qkv, 3, cur, T, qkv);
            const Act q = rt.to(d, qkv[0]), k = rt.to(d, qkv[1]), v = rt.to(d, qkv[2]);
            if (L.bq.valid()) be.add_bias(q, L.bq, T, q_dim);
            if (L.bk.valid()) be.add_bias(k, L.bk, T, k_dim);
            if (L.bv.valid()) be.add_bias(v, L.bv, T, v_dim);
            be.rope(hp_.rope, q, T, hp_.n_head, hp_.head_dim_k, pi.pos.data());
            be.rope(hp_.rope, k, T, hp_.n_head_kv, hp_.head_dim_k, pi.pos.data());
            be.store_kv(cache, il, pi.kv_rows(), k, v);
            const Act attn = be.alloc(T * o_dim);
            be.attention(ap, cache, il, pi.attn, q, attn);
            if (!L.ffn_gate_inp.valid()) prefetch_next(rt, NextWeights{{&L.ffn_gate, &L.ffn_up}, true}, T);
            add_residual(rt, x, product(rt, L.wo, attn, T), T * E);

            const Act cur2 = rms_norm(rt, x, E, L.ffn_norm, T, E, hp_.rms_eps);
            Act out;
            if (L.ffn_gate_inp.valid()) {
                runtime::RouterParams rp;
                rp.k = hp_.n_expert_used;
                rp.renorm = hp_.expert_weights_norm;
                const MoeWeights mw{&L.ffn_gate_inp, &L.ffn_gate_exps, &L.ffn_up_exps, &L.ffn_down_exps};
                out = moe_ffn(rt, mw, rp, cur2, T);
            } else {
                NextWeights next;  // the next layer's Q/K/V, or the output matrix
                if (il + 1 < hp_.n_layer) {
                    const LlamaLayer& N = layers_[(size_t)il + 1];
                    next = NextWeights{{&N.wq, &N.wk, &N.wv}};
                } else {
                    next = NextWeights{{&output_}};
                }
                out = ffn_swiglu(rt, L.ffn_gate, L.ffn_up, L.ffn_down, cur2, T, next);
            }
            add_residual(rt, x, out, T * E);
        }
        output_logits(rt, output_norm_, output_, hp_.rms_eps, x, E, pi, logits);
        pass.finish();
    }

private:
    Tensor tok_embd_;     // [n_embd, n_vocab]
    Tensor output_norm_;  // [n_embd]
    Tensor output_;       // [n_embd, n_vocab] (tok_embd_ when tied)
    std::vector<LlamaLayer> layers_;
};

}  // namespace

std::unique_ptr<Model> make_llama(std::shared_ptr<gguf::File> f, const LoadOptions& opt) { return std::make_unique<LlamaModel>(std::move(f), opt); }

}  // namespace yiti::model
