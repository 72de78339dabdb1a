// deepseek2: DeepSeek-V2/V3/R1. Multi-head latent attention (MLA) with a compressed KV cache,
// YaRN rope, leading dense layers, then sigmoid- or softmax-gated routed experts plus shared experts.
#include <cmath>

#include "core/error.h"
#include "core/fp16.h"
#include "cpu/kernels.h"
#include "cpu/packed.h"
#include "quant/quant.h"
#include "model/blocks.h"
#include "model/model.h"

namespace yiti::model {

namespace {

struct DsLayer {
    Tensor attn_norm;  // [n_embd]
    Tensor wq;         // [n_embd, n_head * head_dim_k] (no query compression, as in V2-Lite)
    Tensor wq_a;       // [n_embd, q_lora_rank]
    Tensor q_a_norm;   // [q_lora_rank]
    Tensor wq_b;       // [q_lora_rank, n_head * head_dim_k]
    Tensor wkv_a;      // [n_embd, kv_lora_rank + n_rot]
    Tensor kv_a_norm;  // [kv_lora_rank]
    Tensor wkv_b;      // [kv_lora_rank, n_head * (n_nope + head_dim_v)]
    Tensor wo;         // [n_head * head_dim_v, n_embd]
    // Absorbed form: per head, the key half of wkv_b transposed, in F16 (half the bytes of F32; the
    // rounding of the file's values to F16 is far below the golden thresholds): [n_head][kv_lora_rank][n_nope],
    // as a tensor [n_nope, n_head * kv_lora_rank] on wkv_b's device.
    std::vector<uint16_t> wk_b_t;
    Tensor wk_b_f16;
    // The same in Q8_0, packed for the CPU kernels ([n_nope, kv_lora_rank, n_head]), for the fast mode
    // (about half the bytes the F16 copy streams per token); invalid where Q8_0 has no packed kernels.
    std::vector<uint8_t> wk_b_q_raw;
    Tensor wk_b_q;
    Tensor ffn_norm;        // [n_embd]
    Tensor ffn_gate;        // [n_embd, n_ff] (leading dense layers)
    Tensor ffn_up;          // [n_embd, n_ff]
    Tensor ffn_down;        // [n_ff, n_embd]
    Tensor ffn_gate_inp;    // [n_embd, n_expert]
    Tensor exp_probs_b;     // [n_expert] selection bias (optional)
    Tensor ffn_gate_exps;   // [n_embd, n_ff_exp, n_expert]
    Tensor ffn_up_exps;     // [n_embd, n_ff_exp, n_expert]
    Tensor ffn_down_exps;   // [n_ff_exp, n_embd, n_expert]
    Tensor ffn_gate_shexp;  // [n_embd, n_ff_exp * n_expert_shared]
    Tensor ffn_up_shexp;    // [n_embd, n_ff_exp * n_expert_shared]
    Tensor ffn_down_shexp;  // [n_ff_exp * n_expert_shared, n_embd]
};

class DeepSeek2Model final : public Model {
public:
    DeepSeek2Model(std::shared_ptr<gguf::File> f, const LoadOptions& opt) : Model(std::move(f), opt) {
        read_common_hparams();
        const std::string& path = file_->path();
        hp_.rope.style = cpu::RopeStyle::Normal;
        hp_.q_lora_rank = file_->get_int(key("attention.q_lora_rank")).value_or(0);
        hp_.kv_lora_rank = need_int(key("attention.kv_lora_rank"));
        hp_.n_layer_dense_lead = (int)file_->get_int(key("leading_dense_block_count")).value_or(0);
        hp_.n_ff_exp = file_->get_int(key("expert_feed_forward_length")).value_or(0);
        hp_.n_expert_shared = (int)file_->get_int(key("expert_shared_count")).value_or(0);
        hp_.expert_weights_scale = (float)file_->get_float(key("expert_weights_scale")).value_or(1.0);
        hp_.expert_weights_norm = file_->get_bool(key("expert_weights_norm")).value_or(false);
        const int64_t gating = file_->get_int(key("expert_gating_func")).value_or(1);
        if (gating != 1 && gating != 2)
            throw Error(strprintf("model: %s: %s = %lld is not softmax (1) or sigmoid (2)", path.c_str(),
                                  key("expert_gating_func").c_str(), (long long)gating));
        hp_.expert_gating = (ExpertGating)gating;
        hp_.n_expert_groups = (int)file_->get_int(key("expert_group_count")).value_or(0);
        hp_.n_expert_groups_used = (int)file_->get_int(key("expert_group_used_count")).value_or(0);
        n_rot_ = hp_.rope.n_rot;
        n_nope_ = hp_.head_dim_k - n_rot_;
        if (hp_.kv_lora_rank <= 0 || n_nope_ <= 0)
            throw Error(strprintf("model: %s: kv_lora_rank %lld / key_length %lld / rope dims %d are inconsistent",
                                  path.c_str(), (long long)hp_.kv_lora_rank, (long long)hp_.head_dim_k, n_rot_));
        if (hp_.n_layer_dense_lead < 0 || hp_.n_layer_dense_lead > hp_.n_layer)
            throw Error(strprintf("model: %s: leading_dense_block_count %d is out of range", path.c_str(),
                                  hp_.n_layer_dense_lead));
        if (hp_.n_expert_groups > 0 && (hp_.n_expert % hp_.n_expert_groups != 0 ||
                                        hp_.n_expert_groups_used <= 0 || hp_.n_expert_groups_used > hp_.n_expert_groups))
            throw Error(strprintf("model: %s: expert groups %d / used %d do not divide %d experts", path.c_str(),
                                  hp_.n_expert_groups, hp_.n_expert_groups_used, hp_.n_expert));
        // YaRN: pre-scale the attention (the rope's own magnitude correction is cancelled).
        const float log_mul = (float)file_->get_float(key("rope.scaling.yarn_log_multiplier")).value_or(0.0);
        const float mscale = 1.0f + log_mul * std::log(1.0f / hp_.rope.freq_scale);
        hp_.attn_scale = mscale * mscale / std::sqrt((float)hp_.head_dim_k);
        hp_.rope.attn_factor = 1.0f / (1.0f + 0.1f * std::log(1.0f / hp_.rope.freq_scale));

        const int64_t E = hp_.n_embd, H = hp_.n_head, Dk = hp_.head_dim_k, Dv = hp_.head_dim_v;
        const int64_t R = hp_.kv_lora_rank;
        tok_embd_ = tensor("token_embd.weight", {E, hp_.n_vocab});
        output_norm_ = tensor_f32("output_norm.weight", E);
        output_ = tensor("output.weight", {E, hp_.n_vocab}, false);
        if (!output_.valid()) output_ = tied_output(tok_embd_);
        layers_.resize((size_t)hp_.n_layer);
        for (int il = 0; il < hp_.n_layer; ++il) {
            DsLayer& L = layers_[(size_t)il];
            const std::string p = "blk." + std::to_string(il) + ".";
            L.attn_norm = tensor_f32(p + "attn_norm.weight", E);
            if (hp_.q_lora_rank > 0) {
                L.wq_a = tensor(p + "attn_q_a.weight", {E, hp_.q_lora_rank});
                L.q_a_norm = tensor_f32(p + "attn_q_a_norm.weight", hp_.q_lora_rank);
                L.wq_b = tensor(p + "attn_q_b.weight", {hp_.q_lora_rank, H * Dk});
            } else {
                L.wq = tensor(p + "attn_q.weight", {E, H * Dk});
            }
            L.wkv_a = tensor(p + "attn_kv_a_mqa.weight", {E, R + n_rot_});
            L.kv_a_norm = tensor_f32(p + "attn_kv_a_norm.weight", R);
            L.wkv_b = tensor(p + "attn_kv_b.weight", {R, H * (n_nope_ + Dv)});
            L.wo = tensor(p + "attn_output.weight", {H * Dv, E});
            const std::vector<float> wk_b = transpose_k_b(L.wkv_b);
            {
                L.wk_b_t.resize(wk_b.size());
                for (size_t i = 0; i < wk_b.size(); ++i) L.wk_b_t[i] = fp32_to_fp16(wk_b[i]);
                const int64_t ne[2] = {n_nope_, H * R};
                L.wk_b_f16 = make_tensor_view(p + "attn_k_b.f16", DType::F16, ne, 2, L.wk_b_t.data());
                place(L.wk_b_f16, L.wkv_b.device);
            }
            if (L.wkv_b.device.kind == DeviceKind::CPU && cpu::packed_kernels(DType::Q8_0) && n_nope_ % 32 == 0) {
                const size_t rb = row_size(DType::Q8_0, n_nope_);
                L.wk_b_q_raw.resize(rb * (size_t)(H * R));
                for (int64_t r = 0; r < H * R; ++r)
                    quant::quantize_row_ref(DType::Q8_0, wk_b.data() + r * n_nope_, L.wk_b_q_raw.data() + (size_t)r * rb,
                                            n_nope_);
                const int64_t ne[3] = {n_nope_, R, H};
                L.wk_b_q = make_tensor_view(p + "attn_k_b.q8_0", DType::Q8_0, ne, 3, L.wk_b_q_raw.data());
                place(L.wk_b_q, Device{});
            }
            L.ffn_norm = tensor_f32(p + "ffn_norm.weight", E);
            if (il < hp_.n_layer_dense_lead || hp_.n_expert == 0) {
                L.ffn_gate = tensor(p + "ffn_gate.weight", {E, hp_.n_ff});
                L.ffn_up = tensor(p + "ffn_up.weight", {E, hp_.n_ff});
                L.ffn_down = tensor(p + "ffn_down.weight", {hp_.n_ff, E});
            } else {
                const int64_t F = hp_.n_ff_exp, NE = hp_.n_expert;
                if (F <= 0)
                    throw Error(strprintf("model: %s: metadata '%s' is missing", path.c_str(),
                                          key("expert_feed_forward_length").c_str()));
                L.ffn_gate_inp = tensor(p + "ffn_gate_inp.weight", {E, NE});
                L.exp_probs_b = tensor_f32(p + "exp_probs_b.bias", NE, false);
                L.ffn_gate_exps = tensor(p + "ffn_gate_exps.weight", {E, F, NE});
                L.ffn_up_exps = tensor(p + "ffn_up_exps.weight", {E, F, NE});
                L.ffn_down_exps = tensor(p + "ffn_down_exps.weight", {F, E, NE});
                keep_together({&L.ffn_gate_exps, &L.ffn_up_exps, &L.ffn_down_exps});
                if (hp_.n_expert_shared > 0) {
                    const int64_t FS = F * hp_.n_expert_shared;
                    L.ffn_gate_shexp = tensor(p + "ffn_gate_shexp.weight", {E, FS});
                    L.ffn_up_shexp = tensor(p + "ffn_up_shexp.weight", {E, FS});
                    L.ffn_down_shexp = tensor(p + "ffn_down_shexp.weight", {FS, E});
                }
            }
        }
    }

    void set_attention_form(AttnForm f) override { form_ = f; }

    // The latent cache is already ~35x smaller than full keys and values; keeping it in F32 costs
    // little and avoids rounding the latent, whose error every head's keys and values inherit
    // (measured on the synthetic models: F16 latents moved more MoE expert choices).
    DType preferred_kv_type() const override { return DType::F32; }

    kv::KVLayout kv_layout(DType kv_type) const override {
        kv::KVLayout l;
        l.n_layer = hp_.n_layer;
        l.k_dim = hp_.kv_lora_rank + n_rot_;  // the normalized latent, then the shared rope key
        l.v_dim = 0;                           // values are expanded from the latent
        l.type = kv_type;
        return l;
    }

    std::vector<Device> layer_devices() const override {
        std::vector<Device> d;
        for (const DsLayer& L : layers_) d.push_back(L.wkv_b.device);
        return d;
    }

    void forward(runtime::Runtime& rt, kv::KVCache& cache, const Batch& batch, float* logits) override {
        const PassInfo pi = make_pass_info(batch);
        const int64_t T = pi.n_tok, E = hp_.n_embd, H = hp_.n_head, Dk = hp_.head_dim_k, Dv = hp_.head_dim_v;
        const int64_t R = hp_.kv_lora_rank, L_dim = R + n_rot_;
        Pass pass(rt);
        runtime::Backend& eb = rt.backend(tok_embd_.device);
        Act x = eb.alloc(T * E);
        eb.get_rows(tok_embd_, batch.tokens.data(), T, x);

        // Which sequences use which form of attention in this pass (a GPU: always absorbed).
        std::vector<size_t> absorbed, expanded, all;
        for (size_t s = 0; s < batch.seqs.size(); ++s) {
            const bool use_abs = form_ == AttnForm::Absorbed || (form_ == AttnForm::Auto && batch.seqs[s].n == 1);
            (use_abs ? absorbed : expanded).push_back(s);
            all.push_back(s);
        }

        for (int il = 0; il < hp_.n_layer; ++il) {
            const DsLayer& L = layers_[(size_t)il];
            // The layer's attention runs where its latent cache lives; the residual stream goes there.
            const Device d = L.wkv_b.device;
            runtime::Backend& be = rt.backend(d);
            x = rt.to(d, x);
            const runtime::Runtime::Scope scratch(rt);  // the layer's scratch goes back at its end
            const Act cur = rms_norm(rt, x, E, L.attn_norm, T, E, hp_.rms_eps);
            // Queries [T][H][n_nope + n_rot] and the compressed KV [T][kv_lora_rank | n_rot] (the
            // query's first product and the KV share their input: one job list); the latent is
            // normalized, the rope parts rotated.
            Act q, lat;
            if (L.wq_a.valid()) {
                Act ys[2];
                const Tensor* ws[2] = {&L.wq_a, &L.wkv_a};
                prefetch_next(rt, NextWeights{{&L.wq_b}}, T);
                products(rt, ws, 2, cur, T, ys);
                rms_norm_inplace(rt, ys[0], hp_.q_lora_rank, L.q_a_norm, T, hp_.q_lora_rank, hp_.rms_eps);
                prefetch_next(rt, NextWeights{{&L.wo}}, T);
                q = product(rt, L.wq_b, ys[0], T);
                lat = ys[1];
            } else {
                Act ys[2];
                const Tensor* ws[2] = {&L.wq, &L.wkv_a};
                prefetch_next(rt, NextWeights{{&L.wo}}, T);
                products(rt, ws, 2, cur, T, ys);
                q = ys[0];
                lat = ys[1];
            }
            q = rt.to(d, q);
            lat = rt.to(d, lat);
            rms_norm_inplace(rt, lat, L_dim, L.kv_a_norm, T, R, hp_.rms_eps);
            be.rope(hp_.rope, q.at(n_nope_), T, (int)H, Dk, pi.pos.data());
            be.rope(hp_.rope, lat.at(R), T, 1, L_dim, pi.pos.data());
            be.store_kv(cache, il, pi.kv_rows(), lat, Act{});

            const Act attn = be.alloc(T * H * Dv);
            if (d.kind != DeviceKind::CPU) {
                attend_absorbed(rt, be, cache, il, L, pi, all, q, attn);
            } else {
                if (!absorbed.empty()) attend_absorbed(rt, be, cache, il, L, pi, absorbed, q, attn);
                for (size_t s : expanded) attend_expanded(rt, cache, il, L, pi.attn[s], q.host, attn.host);
            }

            if (L.ffn_gate_inp.valid())
                prefetch_next(rt, NextWeights{{&L.ffn_gate_inp, &L.ffn_gate_shexp, &L.ffn_up_shexp}}, T);
            else
                prefetch_next(rt, NextWeights{{&L.ffn_gate, &L.ffn_up}, true}, T);
            add_residual(rt, x, product(rt, L.wo, attn, T), T * E);

            const Act cur2 = rms_norm(rt, x, E, L.ffn_norm, T, E, hp_.rms_eps);
            NextWeights next;  // the next layer's first products, or the output matrix
            if (il + 1 < hp_.n_layer) {
                const DsLayer& N = layers_[(size_t)il + 1];
                next = NextWeights{{N.wq_a.valid() ? &N.wq_a : &N.wq, &N.wkv_a}};
            } else {
                next = NextWeights{{&output_}};
            }
            Act out;
            if (L.ffn_gate_inp.valid()) {
                runtime::RouterParams rp;
                rp.sigmoid = hp_.expert_gating == ExpertGating::Sigmoid;
                rp.k = hp_.n_expert_used;
                rp.selection_bias = L.exp_probs_b.valid() ? &L.exp_probs_b : nullptr;
                rp.renorm = hp_.expert_weights_norm;
                rp.scale = hp_.expert_weights_scale;
                rp.n_groups = hp_.n_expert_groups;
                rp.n_groups_used = hp_.n_expert_groups_used;
                MoeWeights mw{&L.ffn_gate_inp, &L.ffn_gate_exps, &L.ffn_up_exps, &L.ffn_down_exps};
                if (L.ffn_gate_shexp.valid()) {
                    mw.shared_gate = &L.ffn_gate_shexp;
                    mw.shared_up = &L.ffn_up_shexp;
                    mw.shared_down = &L.ffn_down_shexp;
                }
                out = moe_ffn(rt, mw, rp, cur2, T, next);
            } else {
                out = ffn_swiglu(rt, L.ffn_gate, L.ffn_up, L.ffn_down, cur2, T, next);
            }
            add_residual(rt, x, out, T * E);
        }
        output_logits(rt, output_norm_, output_, hp_.rms_eps, x, E, pi, logits);
        pass.finish();
    }

private:
    std::vector<float> transpose_k_b(const Tensor& wkv_b) const {
        const int64_t H = hp_.n_head, R = hp_.kv_lora_rank, Dv = hp_.head_dim_v;
        const cpu::CpuKernels* k = cpu::cpu_kernels(wkv_b.type);
        if (!k) throw Error(strprintf("tensor '%s': type %s has no CPU kernels", wkv_b.name.c_str(), dtype_name(wkv_b.type)));
        std::vector<float> out((size_t)(H * R * n_nope_)), row((size_t)R);
        for (int64_t h = 0; h < H; ++h)
            for (int64_t i = 0; i < n_nope_; ++i) {
                k->to_float(wkv_b.row(h * (n_nope_ + Dv) + i), row.data(), R);
                for (int64_t j = 0; j < R; ++j) out[(size_t)((h * R + j) * n_nope_ + i)] = row[(size_t)j];
            }
        return out;
    }

    // Attention on the latent cache: q_nope is folded through the key half of wkv_b, the
    // attention output (in latent space) through the value half. The chosen sequences' rows are
    // packed in order (row r of the packed buffers).
    void attend_absorbed(runtime::Runtime& rt, runtime::Backend& be, kv::KVCache& cache, int il, const DsLayer& L,
                         const PassInfo& pi, const std::vector<size_t>& seqs, const Act& q, const Act& attn) {
        const int64_t H = hp_.n_head, Dk = hp_.head_dim_k, Dv = hp_.head_dim_v, R = hp_.kv_lora_rank;
        const int64_t Lq = R + n_rot_, N = n_nope_;
        std::vector<cpu::AttnSeq> as;
        int64_t n = 0;
        for (size_t s : seqs) {
            cpu::AttnSeq a = pi.attn[s];
            a.first = n;
            n += a.n;
            as.push_back(a);
        }
        const Act qn = be.alloc(H * n * N), qo = be.alloc(H * n * R), qa = be.alloc(n * H * Lq);
        for (size_t i = 0; i < seqs.size(); ++i) {
            const cpu::AttnSeq& src = pi.attn[seqs[i]];
            // qn[h][r] = q_nope of row r, head h; qa[r][h][R:] = its rope part
            be.copy_strided(q.at(src.first * H * Dk), qn.at(as[i].first * N), H, src.n, N, Dk, H * Dk, n * N, N);
            be.copy_strided(q.at(src.first * H * Dk + N), qa.at(as[i].first * H * Lq + R), src.n, H, n_rot_, H * Dk,
                            Dk, H * Lq, Lq);
        }
        // Fast mode on the CPU: the packed Q8_0 copy (a quarter of the F32 copy's bytes per token).
        const bool q8 = L.wk_b_q.valid() && !rt.exact() && be.device().kind == DeviceKind::CPU;
        be.mul_mat_batched(q8 ? L.wk_b_q : L.wk_b_f16, 0, R, R, H, qn, n, qo);
        be.copy_strided(qo, qa, H, n, R, n * R, R, Lq, H * Lq);  // qa[r][h][:R] = qo[h][r]
        cpu::AttnParams ap;
        ap.n_head = (int)H;
        ap.n_head_kv = 1;
        ap.head_dim_k = Lq;
        ap.head_dim_v = R;
        ap.scale = hp_.attn_scale;
        const Act ol = be.alloc(n * H * R), in = be.alloc(H * n * R), out = be.alloc(H * n * Dv);
        be.attention(ap, cache, il, as, qa, ol);
        // Per head: values = (value half of wkv_b) · latent output, all heads in one list.
        be.copy_strided(ol, in, H, n, R, R, H * R, n * R, R);  // in[h][r] = ol[r][h]
        be.mul_mat_batched(L.wkv_b, N, Dv, N + Dv, H, in, n, out);
        for (size_t i = 0; i < seqs.size(); ++i) {
            const cpu::AttnSeq& src = pi.attn[seqs[i]];
            be.copy_strided(out.at(as[i].first * Dv), attn.at(src.first * H * Dv), H, src.n, Dv, n * Dv, Dv, Dv, H * Dv);
        }
    }

    // Attention with keys and values expanded from the cached latents of the whole sequence.
    void attend_expanded(runtime::Runtime& rt, kv::KVCache& cache, int il, const DsLayer& L, const cpu::AttnSeq& s,
                         const float* q, float* attn) {
        const int64_t H = hp_.n_head, Dk = hp_.head_dim_k, Dv = hp_.head_dim_v, R = hp_.kv_lora_rank;
        const int64_t L_dim = R + n_rot_, W = n_nope_ + Dv;
        const int64_t n_kv = s.pos0 + s.n;
        const cpu::CpuKernels* conv = cpu::cpu_kernels(cache.layout().type);
        std::vector<float> lat((size_t)(n_kv * L_dim)), c((size_t)(n_kv * R)), kv((size_t)(n_kv * H * W));
        for (int64_t p = 0; p < n_kv; ++p) {
            conv->to_float(cache.k_row(il, *s.kv, p), lat.data() + p * L_dim, L_dim);
            std::copy(lat.begin() + p * L_dim, lat.begin() + p * L_dim + R, c.begin() + p * R);
        }
        rt.cpu().matmul(L.wkv_b, runtime::host_act(c.data(), n_kv * R), n_kv, runtime::host_act(kv.data(), n_kv * H * W));
        {
            // Per-head keys [n_kv][H][nope | rope] for the vectorized attention (the rope part is shared).
            std::vector<float> kfull((size_t)(n_kv * H * Dk));
            for (int64_t p = 0; p < n_kv; ++p)
                for (int64_t h = 0; h < H; ++h) {
                    float* dst = kfull.data() + (p * H + h) * Dk;
                    std::copy(kv.data() + (p * H + h) * W, kv.data() + (p * H + h) * W + n_nope_, dst);
                    std::copy(lat.data() + p * L_dim + R, lat.data() + p * L_dim + R + n_rot_, dst + n_nope_);
                }
            cpu::DenseKV d;
            d.k = kfull.data();
            d.k_pos_stride = H * Dk;
            d.k_head_stride = Dk;
            d.v = kv.data() + n_nope_;
            d.v_pos_stride = H * W;
            d.v_head_stride = W;
            d.n_kv = n_kv;
            cpu::AttnParams ap;
            ap.n_head = (int)H;
            ap.n_head_kv = (int)H;
            ap.head_dim_k = Dk;
            ap.head_dim_v = Dv;
            ap.scale = hp_.attn_scale;
            if (cpu::attention_dense(rt.pool(), ap, d, s.n, s.pos0, q + s.first * H * Dk, attn + s.first * H * Dv)) return;
        }
        rt.pool().parallel_for(s.n * H, 1, [&](int64_t b, int64_t e) {
            std::vector<float> sc((size_t)n_kv);
            for (int64_t it = b; it < e; ++it) {
                const int64_t t = it / H, h = it % H;
                const int64_t row = s.first + t, pos = s.pos0 + t;
                const float* qh = q + (row * H + h) * Dk;
                float mx = -INFINITY;
                for (int64_t p = 0; p <= pos; ++p) {
                    const float* kh = kv.data() + (p * H + h) * W;
                    sc[(size_t)p] = (cpu::dot_f32(qh, kh, n_nope_) +
                                     cpu::dot_f32(qh + n_nope_, lat.data() + p * L_dim + R, n_rot_)) *
                                    hp_.attn_scale;
                    mx = std::max(mx, sc[(size_t)p]);
                }
                double sum = 0;
                for (int64_t p = 0; p <= pos; ++p) sum += sc[(size_t)p] = std::exp(sc[(size_t)p] - mx);
                float* o = attn + (row * H + h) * Dv;
                std::fill(o, o + Dv, 0.0f);
                for (int64_t p = 0; p <= pos; ++p)
                    cpu::axpy_f32(sc[(size_t)p] / (float)sum, kv.data() + (p * H + h) * W + n_nope_, o, Dv);
            }
        });
    }

    int n_rot_ = 0;
    int64_t n_nope_ = 0;
    AttnForm form_ = AttnForm::Auto;
    Tensor tok_embd_;     // [n_embd, n_vocab]
    Tensor output_norm_;  // [n_embd]
    Tensor output_;       // [n_embd, n_vocab]
    std::vector<DsLayer> layers_;
};

}  // namespace

std::unique_ptr<Model> make_deepseek2(std::shared_ptr<gguf::File> f, const LoadOptions& opt) {
    return std::make_unique<DeepSeek2Model>(std::move(f), opt);
}

}  // namespace yiti::model
