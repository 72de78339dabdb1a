#include "cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "cpu/attention_impl.h"
#include "cpu/kernels.h"
#include "quant/quant.h"

namespace yiti::cpu {

namespace {
// Whether the AVX-512 operator variants (cpu/attention_impl.h) may run on this CPU.
bool use_avx512() {
    static const bool avx512 = (int)cpu_best_isa() >= (int)Isa::AVX512;
    return avx512;
}

const CpuKernels& f32_kernels() {
    static const CpuKernels* k = cpu_kernels(DType::F32);
    YITI_ASSERT(k);
    return *k;
}
}  // namespace

float dot_f32(const float* a, const float* b, int64_t n) {
    float s;
    f32_kernels().vec_dot(n, &s, a, b);
    return s;
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
    if (use_avx512()) {
        axpy_avx512(a, x, y, n);
        return;
    }
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

bool attention_dense(ThreadPool& pool, const AttnParams& p, const DenseKV& kv, int64_t n_tok, int32_t pos0,
                     const float* q, float* out) {
    return use_avx512() && attention_dense_avx512(pool, p, kv, n_tok, pos0, q, out);
}

void get_rows(const Tensor& w, const int32_t* ids, int64_t n, float* out) {
    const CpuKernels* k = cpu_kernels(w.type);
    YITI_ASSERT(k);
    for (int64_t t = 0; t < n; ++t) {
        if (ids[t] < 0 || ids[t] >= w.ne[1])
            throw Error(strprintf("token id %d is out of range (vocabulary has %lld tokens)", ids[t],
                                  (long long)w.ne[1]));
        k->to_float(w.row(ids[t]), out + t * w.ne[0], w.ne[0]);
    }
}

void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out) {
    (use_avx512() ? rms_norm_avx512 : rms_norm_generic)(x, weight, n, eps, out);
}

void rms_norm_generic(const float* x, const float* weight, int64_t n, float eps, float* out) {
    // Eight partial sums (a single chain of dependent double adds made this a serial 2 us per
    // 2048-wide row in decode, where the pool waits on it).
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i0 = 0;
    for (; i0 + 8 <= n; i0 += 8)
        for (int k = 0; k < 8; ++k) part[k] += (double)x[i0 + k] * x[i0 + k];
    for (; i0 < n; ++i0) part[i0 % 8] += (double)x[i0] * x[i0];
    const double sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    const float scale = 1.0f / std::sqrt((float)(sum / n) + eps);
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void add_bias(float* x, const float* bias, int64_t n_rows, int64_t n) {
    for (int64_t r = 0; r < n_rows; ++r)
        for (int64_t i = 0; i < n; ++i) x[r * n + i] += bias[i];
}

void silu_mul(float* gate, const float* up, int64_t n) {
    (use_avx512() ? silu_mul_avx512 : silu_mul_generic)(gate, up, n);
}

void silu_mul_generic(float* gate, const float* up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float g = gate[i];
        gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
}

void softmax(float* x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - mx);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

// ---------------------------------------------------------------------------------------------
// RoPE with YaRN, as defined by the GGUF model family (ggml's rope_yarn).

namespace {
float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return n_dims * std::log(n_ctx_orig / (n_rot * 2 * (float)M_PI)) / (2 * std::log(base));
}
float yarn_ramp(float low, float high, int i0) {
    const float y = (i0 / 2 - low) / std::max(0.001f, high - low);
    return 1 - std::min(1.0f, std::max(0.0f, y));
}

// The cos / sin of every row's rotation: one table per (parameters, positions), kept per thread, so
// that the Q and K rows of a pass and all its layers compute it once.
struct RopeTable {
    RopeParams p;
    std::vector<int32_t> pos;
    std::vector<float> cs;  // [row][n_rot]: cos, sin per pair
    bool same(const RopeParams& q, const int32_t* ps, int64_t n) const {
        return (int64_t)pos.size() == n && p.style == q.style && p.n_rot == q.n_rot && p.freq_base == q.freq_base &&
               p.freq_scale == q.freq_scale && p.ext_factor == q.ext_factor && p.attn_factor == q.attn_factor &&
               p.beta_fast == q.beta_fast && p.beta_slow == q.beta_slow && p.n_ctx_orig == q.n_ctx_orig &&
               std::equal(pos.begin(), pos.end(), ps);
    }
};

const float* rope_table(const RopeParams& p, const int32_t* pos, int64_t n_rows) {
    thread_local RopeTable t;
    if (t.same(p, pos, n_rows)) return t.cs.data();
    const int n_rot = p.n_rot;
    const float theta_scale = std::pow(p.freq_base, -2.0f / n_rot);
    float corr_dims[2] = {0, 0};
    if (p.ext_factor != 0.0f) {
        const float start = std::floor(yarn_corr_dim(n_rot, p.n_ctx_orig, p.beta_fast, p.freq_base));
        const float end = std::ceil(yarn_corr_dim(n_rot, p.n_ctx_orig, p.beta_slow, p.freq_base));
        corr_dims[0] = std::max(0.0f, start);
        corr_dims[1] = std::min((float)(n_rot - 1), end);
    }
    t.p = p;
    t.pos.assign(pos, pos + n_rows);
    t.cs.resize((size_t)(n_rows * n_rot));
    for (int64_t r = 0; r < n_rows; ++r) {
        float* cs = t.cs.data() + r * n_rot;
        float theta_extrap = (float)pos[r];
        for (int i0 = 0; i0 < n_rot; i0 += 2) {
            const float theta_interp = p.freq_scale * theta_extrap;
            float theta = theta_interp;
            float mscale = p.attn_factor;
            if (p.ext_factor != 0.0f) {
                const float ramp_mix = yarn_ramp(corr_dims[0], corr_dims[1], i0) * p.ext_factor;
                theta = theta_interp * (1 - ramp_mix) + theta_extrap * ramp_mix;
                mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);
            }
            cs[i0] = std::cos(theta) * mscale;
            cs[i0 + 1] = std::sin(theta) * mscale;
            theta_extrap *= theta_scale;
        }
    }
    return t.cs.data();
}
}  // namespace

void rope(const RopeParams& p, float* x, int64_t n_rows, int n_heads, int64_t head_stride, const int32_t* pos) {
    const int n_rot = p.n_rot;
    YITI_ASSERT(n_rot % 2 == 0 && n_rot <= head_stride);
    const float* table = rope_table(p, pos, n_rows);
    for (int64_t r = 0; r < n_rows; ++r) {
        const float* cs = table + r * n_rot;
        for (int h = 0; h < n_heads; ++h) {
            float* v = x + (r * n_heads + h) * head_stride;
            for (int i0 = 0; i0 < n_rot; i0 += 2) {
                const float c = cs[i0], s = cs[i0 + 1];
                const int a = p.style == RopeStyle::Normal ? i0 : i0 / 2;
                const int b = p.style == RopeStyle::Normal ? i0 + 1 : i0 / 2 + n_rot / 2;
                const float x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

void store_kv_row(DType type, const float* src, uint8_t* dst, int64_t n) {
    if (type == DType::F32) {
        memcpy(dst, src, (size_t)n * 4);
        return;
    }
    YITI_ASSERT(type == DType::F16);
    uint16_t* d = (uint16_t*)dst;
    if (use_avx512()) {
        fp32_to_fp16_avx512(src, d, n);
        return;
    }
    for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_fp16(src[i]);
}

void attention(ThreadPool& pool, const AttnParams& p, kv::KVCache& cache, int il, const std::vector<AttnSeq>& seqs,
               const float* q, float* out) {
    if (use_avx512() && attention_avx512(pool, p, cache, il, seqs, q, out)) return;
    const int n_rep = p.n_head / p.n_head_kv;
    YITI_ASSERT(n_rep * p.n_head_kv == p.n_head);
    const int bs = cache.block_size();
    const DType kv_type = cache.layout().type;
    const CpuKernels* conv = cpu_kernels(kv_type);
    YITI_ASSERT(conv);
    const size_t elem = dtype_info(kv_type).type_size;
    const int64_t q_row = (int64_t)p.n_head * p.head_dim_k;
    const int64_t o_row = (int64_t)p.n_head * p.head_dim_v;
    const size_t k_row_bytes = cache.k_row_bytes();
    // A cache without V rows (multi-head latent attention) reads V as the first head_dim_v values of K.
    const bool v_in_k = cache.layout().v_dim == 0;
    YITI_ASSERT(!v_in_k || (p.n_head_kv == 1 && p.head_dim_v <= p.head_dim_k));
    const size_t v_row_bytes = v_in_k ? k_row_bytes : cache.v_row_bytes();

    // Work items: (sequence token, kv head); each handles the n_rep query heads of its group
    // with an online softmax over the cache blocks.
    std::vector<std::pair<int, int64_t>> items;  // (seq index, token index in batch)
    for (size_t s = 0; s < seqs.size(); ++s)
        for (int64_t t = 0; t < seqs[s].n; ++t) items.emplace_back((int)s, seqs[s].first + t);
    const int64_t n_items = (int64_t)items.size() * p.n_head_kv;

    pool.parallel_for(n_items, 1, [&](int64_t b, int64_t e) {
        std::vector<float> kbuf((size_t)bs * p.head_dim_k), vbuf((size_t)bs * p.head_dim_v);
        std::vector<float> scores((size_t)bs * n_rep), acc((size_t)n_rep * p.head_dim_v), m((size_t)n_rep),
            l((size_t)n_rep);
        for (int64_t it = b; it < e; ++it) {
            const auto [si, tok] = items[(size_t)(it / p.n_head_kv)];
            const int hkv = (int)(it % p.n_head_kv);
            const AttnSeq& sq = seqs[(size_t)si];
            const int64_t pos = sq.pos0 + (tok - sq.first);
            const int64_t n_kv = pos + 1;
            std::fill(acc.begin(), acc.end(), 0.0f);
            std::fill(m.begin(), m.end(), -INFINITY);
            std::fill(l.begin(), l.end(), 0.0f);
            for (int64_t p0 = 0; p0 < n_kv; p0 += bs) {
                const int blk = sq.kv->blocks[(size_t)(p0 / bs)];
                const int nb = (int)std::min<int64_t>(bs, n_kv - p0);
                const uint8_t* kb = cache.k_block(il, blk) + (size_t)hkv * p.head_dim_k * elem;
                for (int j = 0; j < nb; ++j)
                    conv->to_float(kb + j * k_row_bytes, kbuf.data() + j * p.head_dim_k, p.head_dim_k);
                for (int r = 0; r < n_rep; ++r) {
                    const float* qh = q + tok * q_row + (int64_t)(hkv * n_rep + r) * p.head_dim_k;
                    float* sc = scores.data() + r * bs;
                    float bmax = -INFINITY;
                    for (int j = 0; j < nb; ++j) {
                        sc[j] = dot_f32(qh, kbuf.data() + j * p.head_dim_k, p.head_dim_k) * p.scale;
                        bmax = std::max(bmax, sc[j]);
                    }
                    const float new_m = std::max(m[r], bmax);
                    const float corr = std::exp(m[r] - new_m);
                    l[r] *= corr;
                    float* a = acc.data() + r * p.head_dim_v;
                    if (corr != 1.0f)
                        for (int64_t d = 0; d < p.head_dim_v; ++d) a[d] *= corr;
                    for (int j = 0; j < nb; ++j) {
                        sc[j] = std::exp(sc[j] - new_m);
                        l[r] += sc[j];
                    }
                    m[r] = new_m;
                }
                const uint8_t* vb =
                    v_in_k ? cache.k_block(il, blk) : cache.v_block(il, blk) + (size_t)hkv * p.head_dim_v * elem;
                for (int j = 0; j < nb; ++j)
                    conv->to_float(vb + j * v_row_bytes, vbuf.data() + j * p.head_dim_v, p.head_dim_v);
                for (int r = 0; r < n_rep; ++r) {
                    float* a = acc.data() + r * p.head_dim_v;
                    const float* sc = scores.data() + r * bs;
                    for (int j = 0; j < nb; ++j) axpy_f32(sc[j], vbuf.data() + j * p.head_dim_v, a, p.head_dim_v);
                }
            }
            for (int r = 0; r < n_rep; ++r) {
                float* o = out + tok * o_row + (int64_t)(hkv * n_rep + r) * p.head_dim_v;
                const float inv = 1.0f / l[r];
                for (int64_t d = 0; d < p.head_dim_v; ++d) o[d] = acc[(size_t)r * p.head_dim_v + d] * inv;
            }
        }
    });
}

}  // namespace yiti::cpu
