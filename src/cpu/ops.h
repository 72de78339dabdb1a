// CPU operators on F32 activations. Weights may be of any supported type.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "core/threadpool.h"
#include "kv/kv_cache.h"

namespace yiti::cpu {

// y[t][r] = dot(W row r, x[t]) for t < n_tokens; W is 2-D: ne[0] = n_in, ne[1] = n_out.
// Fast mode quantizes x once to the weight type's activation format; exact mode dequantizes
// weight rows to F32 and multiplies in F32.
void matmul(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tokens, float* y, bool exact);

// Several independent products y = W x in one go: activations shared by several jobs (same x, same
// activation format) are quantized once, and all tiles run in one parallel region.
// With x_rows, the job's columns are rows x_rows[0 .. n_tokens) of x, which has x_n_rows rows (the
// experts of a MoE layer each take their tokens from one shared input, quantized once).
struct MatmulJob {
    const Tensor* w = nullptr;
    const float* x = nullptr;
    int64_t n_tokens = 0;
    float* y = nullptr;
    const int32_t* x_rows = nullptr;
    int64_t x_n_rows = 0;
};
void matmul_jobs(ThreadPool& pool, const MatmulJob* jobs, size_t n_jobs, bool exact);
// Gated linear units: jobs come in (gate, up) pairs of equal shape; after the products,
// gate.y = silu(gate.y) * up.y (silu_mul), applied tile by tile inside the parallel region.
void matmul_glu_jobs(ThreadPool& pool, const MatmulJob* jobs, size_t n_jobs, bool exact);
// Tells the pool's threads what the next job list (as for matmul_jobs / matmul_glu_jobs) will read
// first, so that a thread with nothing to do until then prefetches its share (ThreadPool hints).
void prefetch_hint(ThreadPool& pool, const MatmulJob* jobs, size_t n_jobs, bool glu);

// out[k] = row ids[k] of w as F32 (embedding lookup). Throws Error for an id out of range.
void get_rows(const Tensor& w, const int32_t* ids, int64_t n, float* out);

// out = x / rms(x) * weight, one row of n.
void rms_norm(const float* x, const float* weight, int64_t n, float eps, float* out);
// Adds a bias vector to each of n_rows rows of n.
void add_bias(float* x, const float* bias, int64_t n_rows, int64_t n);
// gate[i] = silu(gate[i]) * up[i]
void silu_mul(float* gate, const float* up, int64_t n);
void softmax(float* x, int64_t n);
float dot_f32(const float* a, const float* b, int64_t n);
void axpy_f32(float a, const float* x, float* y, int64_t n);  // y += a * x

enum class RopeStyle { Normal, Neox };  // Normal: pairs (2i, 2i+1); Neox: pairs (i, i + n_rot/2)

struct RopeParams {
    RopeStyle style = RopeStyle::Normal;
    int n_rot = 0;               // rotated dims at the start of each head
    float freq_base = 10000.0f;
    float freq_scale = 1.0f;     // 1 / linear or YaRN scaling factor
    // YaRN (ext_factor 0 disables): ramps between interpolation and extrapolation per dimension
    float ext_factor = 0.0f;
    float attn_factor = 1.0f;
    float beta_fast = 32.0f;
    float beta_slow = 1.0f;
    int n_ctx_orig = 0;
};

// Rotates n_rows vectors laid out as [n_rows][n_heads][head_stride] in place; row t has position pos[t].
void rope(const RopeParams& p, float* x, int64_t n_rows, int n_heads, int64_t head_stride, const int32_t* pos);

struct AttnParams {
    int n_head = 0;
    int n_head_kv = 0;
    int64_t head_dim_k = 0;  // per head, in the K rows of the cache (and q)
    int64_t head_dim_v = 0;  // per head, in the V rows
    float scale = 1.0f;      // applied to q·k
};

// One sequence's share of a batch: tokens [first, first + n) of the batch, at positions
// pos0 .. pos0 + n - 1; each attends to cache positions [0, its own position].
struct AttnSeq {
    const kv::SeqKV* kv = nullptr;
    int64_t first = 0;
    int64_t n = 0;
    int32_t pos0 = 0;
};

// Standard (multi-/grouped-query) attention over the paged cache of layer il. When the cache has
// no V rows (v_dim 0, as for MLA's latent cache), V is the first head_dim_v values of each K row.
// q: [n_tok][n_head * head_dim_k]; out: [n_tok][n_head * head_dim_v].
void attention(ThreadPool& pool, const AttnParams& p, kv::KVCache& cache, int il, const std::vector<AttnSeq>& seqs,
               const float* q, float* out);

// Causal attention of one sequence's n_tok query rows (positions pos0 ..) over dense F32 keys and
// values: the K row of position p and KV head h at k + p * k_pos_stride + h * k_head_stride (head_dim_k
// floats), V likewise. Returns false where no fast implementation exists (the caller computes it).
struct DenseKV {
    const float* k = nullptr;
    int64_t k_pos_stride = 0, k_head_stride = 0;
    const float* v = nullptr;
    int64_t v_pos_stride = 0, v_head_stride = 0;
    int64_t n_kv = 0;
};
bool attention_dense(ThreadPool& pool, const AttnParams& p, const DenseKV& kv, int64_t n_tok, int32_t pos0,
                     const float* q, float* out);

// Converts F32 rows into the cache's element type (F16 or F32).
void store_kv_row(DType type, const float* src, uint8_t* dst, int64_t n);

}  // namespace yiti::cpu
