// AVX-512 attention over the paged cache (see cpu::attention in ops.h) and vectorized SiLU.
//
// Work items are (sequence, KV head, chunk of up to 16 of its tokens): each cache block's K rows are
// converted (and transposed) once for all the chunk's query heads, scores are computed 16 keys at a
// time, the softmax exponentials are vectorized. Every query row's arithmetic depends only on its own
// query, position and the cache: the same operations in the same order whatever else is in the batch
// or the chunk, so a token's output does not depend on its batch.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "cpu/attention_impl.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace yiti::cpu {

namespace {

// exp(x) for x <= 88, ~1 ulp (Cephes' expf polynomial); exp(-inf) and anything below -104 give 0.
inline __m512 exp512(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-104.0f);
    const __mmask16 zero = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    const __m512 z = _mm512_mul_ps(r, r);
    __m512 y = _mm512_set1_ps(1.9875691500E-4f);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507E-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073E-3f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894E-2f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459E-1f));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201E-1f));
    y = _mm512_fmadd_ps(y, z, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_scalef_ps((__mmask16)~zero, y, n);
}

inline float exp_scalar(float x) {
    alignas(64) float v[16] = {x};
    _mm512_store_ps(v, exp512(_mm512_load_ps(v)));
    return v[0];
}

struct Scratch {
    std::vector<float> kT, v, acc, m, l;
};
thread_local Scratch t_scratch;

constexpr int kChunk = 16;  // tokens per work item

}  // namespace

void silu_mul_avx512(float* gate, const float* up, int64_t n) {
    int64_t i = 0;
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= n; i += 16) {
        const __m512 g = _mm512_loadu_ps(gate + i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_storeu_ps(gate + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
    }
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_mask_storeu_ps(gate + i, m, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, up + i)));
    }
}

namespace {

// One work item: query rows of n_tok tokens (positions pos_first .. + n_tok - 1) x n_rep heads of KV
// head hkv, against keys delivered block by block by src.fill(p0, nbm, hkv, kT, v):
// kT[d][j] (d < Dk, j < bs; zero for j >= nbm) and v[j][d] (j < nbm).
template <class Src>
void attend_item(const Src& src, const AttnParams& p, int bs, int64_t n_tok, int64_t pos_first, int hkv,
                 const float* q, int64_t q_row, float* out, int64_t o_row) {
    const int64_t Dk = p.head_dim_k, Dv = p.head_dim_v;
    const int n_rep = p.n_head / p.n_head_kv;
    const int nvec = bs / 16;
    const int64_t R = n_tok * n_rep;
    Scratch& sc = t_scratch;
    sc.kT.resize((size_t)(Dk * bs));
    sc.v.resize((size_t)(bs * Dv));
    sc.acc.assign((size_t)(R * Dv), 0.0f);
    sc.m.assign((size_t)R, -INFINITY);
    sc.l.assign((size_t)R, 0.0f);
    const int64_t n_kv_max = pos_first + n_tok;
    for (int64_t p0 = 0; p0 < n_kv_max; p0 += bs) {
        const int nbm = (int)std::min<int64_t>(bs, n_kv_max - p0);
        src.fill(p0, nbm, hkv, sc.kT.data(), sc.v.data());
        for (int64_t t = 0; t < n_tok; ++t) {
            const int64_t n_kv = pos_first + t + 1;
            const int nb = (int)std::min<int64_t>(bs, n_kv - p0);
            if (nb <= 0) continue;
            // Scores of the token's n_rep query heads: per key, the sum over d in order.
            for (int r0 = 0; r0 < n_rep; r0 += 4) {
                const int rn = std::min(4, n_rep - r0);
                __m512 s[4][4];
                for (int r = 0; r < 4; ++r)
                    for (int v = 0; v < 4; ++v) s[r][v] = _mm512_setzero_ps();
                const float* qh[4];
                for (int r = 0; r < 4; ++r) qh[r] = q + t * q_row + (int64_t)(hkv * n_rep + r0 + std::min(r, rn - 1)) * Dk;
                for (int64_t d = 0; d < Dk; ++d) {
                    const float* kd = sc.kT.data() + d * bs;
                    __m512 kv[4];
                    for (int v = 0; v < nvec; ++v) kv[v] = _mm512_loadu_ps(kd + 16 * v);
                    for (int r = 0; r < 4; ++r) {
                        const __m512 qd = _mm512_set1_ps(qh[r][d]);
                        for (int v = 0; v < nvec; ++v) s[r][v] = _mm512_fmadd_ps(qd, kv[v], s[r][v]);
                    }
                }
                for (int r = 0; r < rn; ++r) {
                    const int64_t row = t * n_rep + r0 + r;
                    __m512 bmax = _mm512_set1_ps(-INFINITY);
                    __mmask16 mk[4];
                    for (int v = 0; v < nvec; ++v) {
                        const int left = nb - 16 * v;
                        mk[v] = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
                        s[r][v] = _mm512_mul_ps(s[r][v], _mm512_set1_ps(p.scale));
                        bmax = _mm512_mask_max_ps(bmax, mk[v], bmax, s[r][v]);
                    }
                    const float m_old = sc.m[(size_t)row];
                    const float new_m = std::max(m_old, _mm512_reduce_max_ps(bmax));
                    const float corr = exp_scalar(m_old - new_m);
                    float* a = sc.acc.data() + row * Dv;
                    if (corr != 1.0f)
                        for (int64_t d = 0; d < Dv; d += 16)
                            _mm512_storeu_ps(a + d, _mm512_mul_ps(_mm512_loadu_ps(a + d), _mm512_set1_ps(corr)));
                    alignas(64) float e[64];
                    __m512 lsum = _mm512_setzero_ps();
                    for (int v = 0; v < nvec; ++v) {
                        const __m512 ev = _mm512_maskz_mov_ps(mk[v], exp512(_mm512_sub_ps(s[r][v], _mm512_set1_ps(new_m))));
                        _mm512_store_ps(e + 16 * v, ev);
                        lsum = _mm512_add_ps(lsum, ev);
                    }
                    sc.l[(size_t)row] = sc.l[(size_t)row] * corr + _mm512_reduce_add_ps(lsum);
                    sc.m[(size_t)row] = new_m;
                    // acc += sum_j e_j v_j, 16 values of the row at a time.
                    for (int64_t d = 0; d < Dv; d += 64) {
                        const int64_t dn = std::min<int64_t>(64, Dv - d) / 16;
                        __m512 av[4];
                        for (int u = 0; u < dn; ++u) av[u] = _mm512_loadu_ps(a + d + 16 * u);
                        for (int j = 0; j < nb; ++j) {
                            const __m512 ej = _mm512_set1_ps(e[j]);
                            const float* vj = sc.v.data() + (size_t)j * Dv + d;
                            for (int u = 0; u < dn; ++u) av[u] = _mm512_fmadd_ps(ej, _mm512_loadu_ps(vj + 16 * u), av[u]);
                        }
                        for (int u = 0; u < dn; ++u) _mm512_storeu_ps(a + d + 16 * u, av[u]);
                    }
                }
            }
        }
    }
    for (int64_t t = 0; t < n_tok; ++t)
        for (int r = 0; r < n_rep; ++r) {
            const int64_t row = t * n_rep + r;
            float* o = out + t * o_row + (int64_t)(hkv * n_rep + r) * Dv;
            const __m512 inv = _mm512_set1_ps(1.0f / sc.l[(size_t)row]);
            const float* a = sc.acc.data() + row * Dv;
            for (int64_t d = 0; d < Dv; d += 16) _mm512_storeu_ps(o + d, _mm512_mul_ps(_mm512_loadu_ps(a + d), inv));
        }
}

// Transposes nbm rows of Dk floats into kT[d][j] (j < bs), zero-filling j >= nbm.
inline void transpose_rows(const float* const* rows, int nbm, int bs, int64_t Dk, float* kT) {
    for (int64_t d0 = 0; d0 < Dk; d0 += 16) {
        alignas(64) float blk[64][16];
        for (int j = 0; j < bs; ++j) _mm512_store_ps(blk[j], j < nbm ? _mm512_loadu_ps(rows[j] + d0) : _mm512_setzero_ps());
        for (int dd = 0; dd < 16; ++dd)
            for (int j = 0; j < bs; ++j) kT[(size_t)((d0 + dd) * bs + j)] = blk[j][dd];
    }
}

}  // namespace

bool attention_avx512(ThreadPool& pool, const AttnParams& p, kv::KVCache& cache, int il,
                      const std::vector<AttnSeq>& seqs, const float* q, float* out) {
    const int64_t Dk = p.head_dim_k, Dv = p.head_dim_v;
    const int bs = cache.block_size();
    const DType kv_type = cache.layout().type;
    if (Dk % 16 || Dv % 16 || bs % 16 || bs > 64 || (kv_type != DType::F16 && kv_type != DType::F32)) return false;
    const int n_rep = p.n_head / p.n_head_kv;
    YITI_ASSERT(n_rep * p.n_head_kv == p.n_head);
    const size_t elem = dtype_info(kv_type).type_size;
    const int64_t q_row = (int64_t)p.n_head * Dk, o_row = (int64_t)p.n_head * Dv;
    const size_t k_row_bytes = cache.k_row_bytes();
    const bool v_in_k = cache.layout().v_dim == 0;
    YITI_ASSERT(!v_in_k || (p.n_head_kv == 1 && Dv <= Dk));
    const size_t v_row_bytes = v_in_k ? k_row_bytes : cache.v_row_bytes();

    struct Item {
        int seq;
        int64_t t0, t1;  // tokens (batch rows)
        int hkv;
    };
    std::vector<Item> items;
    for (size_t s = 0; s < seqs.size(); ++s)
        for (int64_t t0 = 0; t0 < seqs[s].n; t0 += kChunk)
            for (int h = 0; h < p.n_head_kv; ++h)
                items.push_back({(int)s, seqs[s].first + t0, seqs[s].first + std::min<int64_t>(seqs[s].n, t0 + kChunk), h});

    struct CacheSrc {
        kv::KVCache& cache;
        const AttnSeq* sq;
        int il, bs;
        DType kv_type;
        size_t elem, k_row_bytes, v_row_bytes;
        bool v_in_k;
        int64_t Dk, Dv;
        void to_f32(const uint8_t* src, float* dst, int64_t n) const {
            if (kv_type == DType::F32) {
                memcpy(dst, src, (size_t)n * 4);
                return;
            }
            const uint16_t* h = (const uint16_t*)src;
            for (int64_t i = 0; i < n; i += 16)
                _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(h + i))));
        }
        void fill(int64_t p0, int nbm, int hkv, float* kT, float* v) const {
            const int blk = sq->kv->blocks[(size_t)(p0 / bs)];
            const uint8_t* kb = cache.k_block(il, blk) + (size_t)hkv * Dk * elem;
            thread_local std::vector<float> kf;
            kf.resize((size_t)(bs * Dk));
            const float* rows[64];
            for (int j = 0; j < nbm; ++j) {
                to_f32(kb + j * k_row_bytes, kf.data() + (size_t)j * Dk, Dk);
                rows[j] = kf.data() + (size_t)j * Dk;
            }
            transpose_rows(rows, nbm, bs, Dk, kT);
            const uint8_t* vb = v_in_k ? cache.k_block(il, blk) : cache.v_block(il, blk) + (size_t)hkv * Dv * elem;
            for (int j = 0; j < nbm; ++j) to_f32(vb + j * v_row_bytes, v + (size_t)j * Dv, Dv);
        }
    };
    pool.run_tasks((int64_t)items.size(), [&](int64_t it) {
        const Item& item = items[(size_t)it];
        const AttnSeq& sq = seqs[(size_t)item.seq];
        const CacheSrc src{cache, &sq, il, bs, kv_type, elem, k_row_bytes, v_row_bytes, v_in_k, Dk, Dv};
        const int64_t pos_first = sq.pos0 + (item.t0 - sq.first);
        attend_item(src, p, bs, item.t1 - item.t0, pos_first, item.hkv, q + item.t0 * q_row, q_row, out + item.t0 * o_row,
                    o_row);
    });
    return true;
}

bool attention_dense_avx512(ThreadPool& pool, const AttnParams& p, const DenseKV& kv, int64_t n_tok, int32_t pos0,
                            const float* q, float* out) {
    const int64_t Dk = p.head_dim_k, Dv = p.head_dim_v;
    constexpr int bs = 32;
    if (Dk % 16 || Dv % 16) return false;
    const int64_t q_row = (int64_t)p.n_head * Dk, o_row = (int64_t)p.n_head * Dv;
    YITI_ASSERT(kv.n_kv >= pos0 + n_tok);
    struct Item {
        int64_t t0, t1;
        int hkv;
    };
    std::vector<Item> items;
    for (int64_t t0 = 0; t0 < n_tok; t0 += kChunk)
        for (int h = 0; h < p.n_head_kv; ++h) items.push_back({t0, std::min<int64_t>(n_tok, t0 + kChunk), h});
    struct DenseSrc {
        const DenseKV& kv;
        int64_t Dk, Dv;
        void fill(int64_t p0, int nbm, int hkv, float* kT, float* v) const {
            const float* rows[64];
            for (int j = 0; j < nbm; ++j) rows[j] = kv.k + (p0 + j) * kv.k_pos_stride + hkv * kv.k_head_stride;
            transpose_rows(rows, nbm, bs, Dk, kT);
            for (int j = 0; j < nbm; ++j)
                memcpy(v + (size_t)j * Dv, kv.v + (p0 + j) * kv.v_pos_stride + hkv * kv.v_head_stride, (size_t)Dv * sizeof(float));
        }
    };
    pool.run_tasks((int64_t)items.size(), [&](int64_t it) {
        const Item& item = items[(size_t)it];
        const DenseSrc src{kv, Dk, Dv};
        attend_item(src, p, bs, item.t1 - item.t0, pos0 + item.t0, item.hkv, q + item.t0 * q_row, q_row,
                    out + item.t0 * o_row, o_row);
    });
    return true;
}

void axpy_avx512(float a, const float* x, float* y, int64_t n) {
    // y + a * x rounded twice (multiply, then add), as the generic loop computes it.
    const __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_mul_ps(va, _mm512_loadu_ps(x + i))));
    for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace yiti::cpu
