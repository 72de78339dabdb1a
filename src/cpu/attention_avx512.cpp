// AVX-512 attention over the paged cache (see cpu::attention in ops.h).
//
// Work items are (sequence, KV head, chunk of its tokens, at least 64 query rows): each cache block's K
// rows are converted and transposed (16 x 16 tiles in registers) once for all the chunk's query rows,
// the rows (token, head) are scored 8 (or 4) at a time whatever their tokens, 16 keys per vector, and
// the softmax exponentials are vectorized. Every query row's arithmetic depends only on its own query,
// position and the cache: the same operations in the same order whatever else is in the batch, the
// chunk or its group of rows, so a token's output does not depend on its batch.
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

struct Scratch {
    std::vector<float> kT, v, acc, m, l, qp;
};
thread_local Scratch t_scratch;

}  // namespace

namespace {

// Where a block's V rows are: row j at v + j * stride.
struct VRows {
    const float* v;
    int64_t stride;
};

// Transposes a 16 x 16 tile in registers: r[j][i] becomes r[i][j].
inline void transpose16x16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        const __m512d t0 = _mm512_castps_pd(t[i]), t1 = _mm512_castps_pd(t[i + 1]);
        const __m512d t2 = _mm512_castps_pd(t[i + 2]), t3 = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    // r[4i + k], 128-bit lane l: element 4l + k of rows 4i .. 4i + 3; gather the lanes.
    for (int k = 0; k < 4; ++k) {
        const __m512 u0 = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x44), u1 = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xEE);
        const __m512 u2 = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x44), u3 = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xEE);
        t[k] = _mm512_shuffle_f32x4(u0, u2, 0x88);
        t[4 + k] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
        t[8 + k] = _mm512_shuffle_f32x4(u1, u3, 0x88);
        t[12 + k] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
    }
    for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// kT[d][j] (d < Dk, j < bs) = row j's value d, zero for j >= nbm; load(j, d0) gives row j's 16 values from d0.
template <class Load>
inline void transpose_rows(const Load& load, int nbm, int bs, int64_t Dk, float* kT) {
    for (int j0 = 0; j0 < bs; j0 += 16)
        for (int64_t d0 = 0; d0 < Dk; d0 += 16) {
            __m512 r[16];
            for (int j = 0; j < 16; ++j) r[j] = j0 + j < nbm ? load(j0 + j, d0) : _mm512_setzero_ps();
            transpose16x16(r);
            for (int i = 0; i < 16; ++i) _mm512_storeu_ps(kT + (d0 + i) * bs + j0, r[i]);
        }
}

// a[0 .. 16U) += e[j] * v_j for j = j0 .. j1 - 1 in order (v_j = v + j * stride).
template <int U>
inline void accumulate_v(float* a, const float* e, int j0, int j1, const float* v, int64_t stride) {
    __m512 av[U];
    for (int u = 0; u < U; ++u) av[u] = _mm512_loadu_ps(a + 16 * u);
    for (int j = j0; j < j1; ++j) {
        const __m512 ej = _mm512_set1_ps(e[j]);
        const float* vj = v + j * stride;
        for (int u = 0; u < U; ++u) av[u] = _mm512_fmadd_ps(ej, _mm512_loadu_ps(vj + 16 * u), av[u]);
    }
    for (int u = 0; u < U; ++u) _mm512_storeu_ps(a + 16 * u, av[u]);
}

// accumulate_v for 4 rows (acc a[r], weights e[r], keys j < nb[r]) sharing the loads of V: the keys
// all rows have together, then each row's remaining ones, so each row still adds its keys in order.
template <int U>
inline void accumulate_v4(float* const a[4], const float* const e[4], const int nb[4], const float* v, int64_t stride) {
    const int nmin = std::max(0, std::min(std::min(nb[0], nb[1]), std::min(nb[2], nb[3])));
    __m512 av[4][U];
    for (int r = 0; r < 4; ++r)
        for (int u = 0; u < U; ++u) av[r][u] = _mm512_loadu_ps(a[r] + 16 * u);
    for (int j = 0; j < nmin; ++j) {
        const float* vj = v + j * stride;
        __m512 vv[U];
        for (int u = 0; u < U; ++u) vv[u] = _mm512_loadu_ps(vj + 16 * u);
        for (int r = 0; r < 4; ++r) {
            const __m512 ej = _mm512_set1_ps(e[r][j]);
            for (int u = 0; u < U; ++u) av[r][u] = _mm512_fmadd_ps(ej, vv[u], av[r][u]);
        }
    }
    for (int r = 0; r < 4; ++r)
        for (int u = 0; u < U; ++u) _mm512_storeu_ps(a[r] + 16 * u, av[r][u]);
    for (int r = 0; r < 4; ++r)
        if (nb[r] > nmin) accumulate_v<U>(a[r], e[r], nmin, nb[r], v, stride);
}

// For values d0 .. d1 - 1 (16 U at a time) of n rows: acc += sum_j e_j v_j.
template <int U>
inline void accumulate_rows(int n, float* const a[], const float* const e[], const int nb[], int64_t d0, int64_t d1,
                            const float* v, int64_t stride) {
    for (int64_t d = d0; d < d1; d += 16 * U) {
        int r = 0;
        for (; r + 4 <= n; r += 4) {
            float* const a4[4] = {a[r] + d, a[r + 1] + d, a[r + 2] + d, a[r + 3] + d};
            accumulate_v4<U>(a4, e + r, nb + r, v + d, stride);
        }
        for (; r < n; ++r)
            if (nb[r] > 0) accumulate_v<U>(a[r] + d, e[r], 0, nb[r], v + d, stride);
    }
}

// The query heads [first, first + count) of a KV head (of the n_head / n_head_kv that share it).
struct HeadRange {
    int first, count;
};

// One work item: query rows of n_tok tokens (positions pos_first .. + n_tok - 1) x the heads hr of KV
// head hkv, against keys delivered block by block by src.fill(p0, nbm, hkv, kT, vbuf): kT[d][j]
// (d < Dk, j < bs = 16 NV; zero for j >= nbm), and the returned V rows (j < nbm).
// The rows (token t, head r), row = t * n_rep + r, are scored G at a time, whatever their tokens; each
// row has its own causal limit, and its arithmetic (per key the fma chain over d in order, scale,
// block max, exponentials, V sums in order of keys) does not depend on the other rows of its group
// (nor on how the heads are split into items).
template <int NV, class Src>
void attend_item(const Src& src, const AttnParams& p, int64_t n_tok, int64_t pos_first, int hkv, HeadRange hr,
                 const float* q, int64_t q_row, float* out, int64_t o_row) {
    constexpr int bs = 16 * NV;
    constexpr int G = NV <= 2 ? 8 : 4;  // rows scored together
    const int64_t Dk = p.head_dim_k, Dv = p.head_dim_v;
    const int n_rep = hr.count;
    const int64_t head0 = (int64_t)hkv * (p.n_head / p.n_head_kv) + hr.first;  // the item's first query head
    const int64_t R = n_tok * n_rep;
    Scratch& sc = t_scratch;
    sc.kT.resize((size_t)(Dk * bs));
    sc.v.resize((size_t)(bs * Dv));
    sc.acc.assign((size_t)(R * Dv), 0.0f);
    sc.m.assign((size_t)R, -INFINITY);
    sc.l.assign((size_t)R, 0.0f);
    const __m512 scale = _mm512_set1_ps(p.scale);
    // The queries by groups of G rows, qp[g0 * Dk + d * G + r] = row g0 + r's value d (a short last
    // group repeats its last row).
    const int64_t n_groups = (R + G - 1) / G;
    sc.qp.resize((size_t)(n_groups * G * Dk));
    for (int64_t g0 = 0; g0 < R; g0 += G)
        for (int r = 0; r < G; ++r) {
            const int64_t row = std::min(g0 + r, R - 1), t = row / n_rep;
            const float* qr = q + t * q_row + (head0 + row % n_rep) * Dk;
            float* qd = sc.qp.data() + g0 * Dk + r;
            for (int64_t d = 0; d < Dk; ++d) qd[d * G] = qr[d];
        }
    const int64_t n_kv_max = pos_first + n_tok;
    for (int64_t p0 = 0; p0 < n_kv_max; p0 += bs) {
        const int nbm = (int)std::min<int64_t>(bs, n_kv_max - p0);
        const VRows vr = src.fill(p0, nbm, hkv, sc.kT.data(), sc.v.data());
        // Rows are in order of tokens, so the first rows that see keys of this block are
        // those of token t_first = p0 - pos_first (or later).
        const int64_t t_first = std::max<int64_t>(0, p0 - pos_first);
        for (int64_t g0 = t_first * n_rep / G * G; g0 < R; g0 += G) {
            const int gn = (int)std::min<int64_t>(G, R - g0);
            int nbr[G];
            for (int r = 0; r < G; ++r) nbr[r] = (int)std::min<int64_t>(bs, pos_first + (g0 + r) / n_rep + 1 - p0);
            // Scores: per key, the sum over d in order.
            __m512 s[G][NV];
            for (int r = 0; r < G; ++r)
                for (int v = 0; v < NV; ++v) s[r][v] = _mm512_setzero_ps();
            const float* qg = sc.qp.data() + g0 * Dk;
            for (int64_t d = 0; d < Dk; ++d) {
                const float* kd = sc.kT.data() + d * bs;
                __m512 kv[NV];
                for (int v = 0; v < NV; ++v) kv[v] = _mm512_loadu_ps(kd + 16 * v);
                for (int r = 0; r < G; ++r) {
                    const __m512 qd = _mm512_set1_ps(qg[d * G + r]);
                    for (int v = 0; v < NV; ++v) s[r][v] = _mm512_fmadd_ps(qd, kv[v], s[r][v]);
                }
            }
            // Softmax of the block: each row's new maximum, then the corrections exp(m_old - new_m)
            // of all rows at once (exp512 works lane by lane), then the exponentials.
            alignas(64) float e[G][bs];
            alignas(64) float m_old[16] = {}, new_m[16] = {}, corr[16];
            float* arow[G];
            const float* erow[G];
            __mmask16 mk[G][NV];
            for (int r = 0; r < gn; ++r) {
                const int nb = nbr[r];
                const int64_t row = g0 + r;
                arow[r] = sc.acc.data() + row * Dv;
                erow[r] = e[r];
                if (nb <= 0) continue;
                __m512 bmax = _mm512_set1_ps(-INFINITY);
                for (int v = 0; v < NV; ++v) {
                    const int left = nb - 16 * v;
                    mk[r][v] = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
                    s[r][v] = _mm512_mul_ps(s[r][v], scale);
                    bmax = _mm512_mask_max_ps(bmax, mk[r][v], bmax, s[r][v]);
                }
                m_old[r] = sc.m[(size_t)row];
                new_m[r] = std::max(m_old[r], _mm512_reduce_max_ps(bmax));
            }
            _mm512_store_ps(corr, exp512(_mm512_sub_ps(_mm512_load_ps(m_old), _mm512_load_ps(new_m))));
            for (int r = 0; r < gn; ++r) {
                if (nbr[r] <= 0) continue;
                const int64_t row = g0 + r;
                float* a = arow[r];
                const float c = corr[r];
                if (c != 1.0f)
                    for (int64_t d = 0; d < Dv; d += 16)
                        _mm512_storeu_ps(a + d, _mm512_mul_ps(_mm512_loadu_ps(a + d), _mm512_set1_ps(c)));
                __m512 lsum = _mm512_setzero_ps();
                for (int v = 0; v < NV; ++v) {
                    const __m512 ev = _mm512_maskz_mov_ps(mk[r][v], exp512(_mm512_sub_ps(s[r][v], _mm512_set1_ps(new_m[r]))));
                    _mm512_store_ps(e[r] + 16 * v, ev);
                    lsum = _mm512_add_ps(lsum, ev);
                }
                sc.l[(size_t)row] = sc.l[(size_t)row] * c + _mm512_reduce_add_ps(lsum);
                sc.m[(size_t)row] = new_m[r];
            }
            // acc += sum_j e_j v_j (in order of j), 64 values of 4 rows at a time.
            accumulate_rows<4>(gn, arow, erow, nbr, 0, Dv - Dv % 64, vr.v, vr.stride);
            accumulate_rows<1>(gn, arow, erow, nbr, Dv - Dv % 64, Dv, vr.v, vr.stride);
        }
    }
    for (int64_t t = 0; t < n_tok; ++t)
        for (int r = 0; r < n_rep; ++r) {
            const int64_t row = t * n_rep + r;
            float* o = out + t * o_row + (head0 + r) * Dv;
            const __m512 inv = _mm512_set1_ps(1.0f / sc.l[(size_t)row]);
            const float* a = sc.acc.data() + row * Dv;
            for (int64_t d = 0; d < Dv; d += 16) _mm512_storeu_ps(o + d, _mm512_mul_ps(_mm512_loadu_ps(a + d), inv));
        }
}

// Tokens per work item: at least 16, and at least 64 query rows, so that each block's conversion
// serves many rows (the results do not depend on it).
inline int64_t chunk_tokens(int n_rep) { return std::max(16, (128 + n_rep - 1) / n_rep); }

// attend_item for a run-time block size (16, 32, 48 or 64).
template <class Src>
void attend_item_bs(int bs, const Src& src, const AttnParams& p, int64_t n_tok, int64_t pos_first, int hkv, HeadRange hr,
                    const float* q, int64_t q_row, float* out, int64_t o_row) {
    switch (bs / 16) {
        case 1: return attend_item<1>(src, p, n_tok, pos_first, hkv, hr, q, q_row, out, o_row);
        case 2: return attend_item<2>(src, p, n_tok, pos_first, hkv, hr, q, q_row, out, o_row);
        case 3: return attend_item<3>(src, p, n_tok, pos_first, hkv, hr, q, q_row, out, o_row);
        default: return attend_item<4>(src, p, n_tok, pos_first, hkv, hr, q, q_row, out, o_row);
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
        HeadRange hr;
    };
    std::vector<Item> items;
    const int64_t chunk = chunk_tokens(n_rep);
    for (size_t s = 0; s < seqs.size(); ++s)
        for (int64_t t0 = 0; t0 < seqs[s].n; t0 += chunk)
            for (int h = 0; h < p.n_head_kv; ++h)
                items.push_back({(int)s, seqs[s].first + t0, seqs[s].first + std::min<int64_t>(seqs[s].n, t0 + chunk), h,
                                 HeadRange{0, n_rep}});
    // Fewer items than threads (decode with one KV head, as MLA's latent cache): the heads in parts,
    // at least 8 to a part; each part converts the cache blocks again, but the threads share the work
    // (16 heads on a 576-wide latent cache: one thread did it all while the other waited).
    const int parts = std::min<int>(n_rep / 8, (pool.size() + (int)items.size() - 1) / std::max<int>(1, (int)items.size()));
    if (parts > 1) {
        std::vector<Item> split;
        for (const Item& it : items)
            for (int k = 0; k < parts; ++k) {
                Item x = it;
                x.hr = HeadRange{n_rep * k / parts, n_rep * (k + 1) / parts - n_rep * k / parts};
                split.push_back(x);
            }
        items.swap(split);
    }

    struct CacheSrc {
        kv::KVCache& cache;
        const AttnSeq* sq;
        int il, bs;
        DType kv_type;
        size_t elem, k_row_bytes, v_row_bytes;
        bool v_in_k;
        int64_t Dk, Dv;
        VRows fill(int64_t p0, int nbm, int hkv, float* kT, float* v) const {
            // Locals only in the loops: the vector stores may alias anything, and with members read
            // through `this` GCC reloaded them (and the type test) on every 16 values (decode spent
            // ~15% of its attention time converting V).
            const int blk = sq->kv->blocks[(size_t)(p0 / bs)];
            const size_t krb = k_row_bytes, vrb = v_row_bytes;
            const int64_t dk = Dk, dv = Dv;
            const uint8_t* kb = cache.k_block(il, blk) + (size_t)hkv * dk * elem;
            const uint8_t* vb = v_in_k ? cache.k_block(il, blk) : cache.v_block(il, blk) + (size_t)hkv * dv * elem;
            if (kv_type == DType::F32) {
                transpose_rows([kb, krb](int j, int64_t d0) { return _mm512_loadu_ps((const float*)(kb + j * krb) + d0); },
                               nbm, bs, dk, kT);
                return {(const float*)vb, (int64_t)(vrb / 4)};
            }
            auto h16 = [](const uint8_t* q) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)q)); };
            transpose_rows([kb, krb, h16](int j, int64_t d0) { return h16(kb + j * krb + 2 * d0); }, nbm, bs, dk, kT);
            for (int j = 0; j < nbm; ++j) {
                const uint8_t* src = vb + j * vrb;
                float* dst = v + j * dv;
                for (int64_t d = 0; d < dv; d += 16) _mm512_storeu_ps(dst + d, h16(src + 2 * d));
            }
            return {v, dv};
        }
    };
    pool.run_tasks((int64_t)items.size(), [&](int64_t it) {
        const Item& item = items[(size_t)it];
        const AttnSeq& sq = seqs[(size_t)item.seq];
        const CacheSrc src{cache, &sq, il, bs, kv_type, elem, k_row_bytes, v_row_bytes, v_in_k, Dk, Dv};
        const int64_t pos_first = sq.pos0 + (item.t0 - sq.first);
        attend_item_bs(bs, src, p, item.t1 - item.t0, pos_first, item.hkv, item.hr, q + item.t0 * q_row, q_row,
                       out + item.t0 * o_row, o_row);
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
    const int64_t chunk = chunk_tokens(p.n_head / p.n_head_kv);
    for (int64_t t0 = 0; t0 < n_tok; t0 += chunk)
        for (int h = 0; h < p.n_head_kv; ++h) items.push_back({t0, std::min<int64_t>(n_tok, t0 + chunk), h});
    struct DenseSrc {
        const DenseKV& kv;
        int64_t Dk, Dv;
        VRows fill(int64_t p0, int nbm, int hkv, float* kT, float* v) const {
            const float* k = kv.k + p0 * kv.k_pos_stride + hkv * kv.k_head_stride;
            transpose_rows([&](int j, int64_t d0) { return _mm512_loadu_ps(k + j * kv.k_pos_stride + d0); }, nbm, bs, Dk, kT);
            // A contiguous copy: the rows of a position are often a multiple of 4 KB apart (L1 set conflicts).
            for (int j = 0; j < nbm; ++j)
                memcpy(v + (size_t)j * Dv, kv.v + (p0 + j) * kv.v_pos_stride + hkv * kv.v_head_stride, (size_t)Dv * sizeof(float));
            return {v, Dv};
        }
    };
    pool.run_tasks((int64_t)items.size(), [&](int64_t it) {
        const Item& item = items[(size_t)it];
        const DenseSrc src{kv, Dk, Dv};
        attend_item<bs / 16>(src, p, item.t1 - item.t0, pos0 + item.t0, item.hkv, HeadRange{0, p.n_head / p.n_head_kv},
                             q + item.t0 * q_row, q_row, out + item.t0 * o_row, o_row);
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
