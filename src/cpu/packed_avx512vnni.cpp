// Packed-weight kernels for AVX-512 VNNI (see cpu/packed.h): Q4_K, Q5_K and Q6_K against Q8_K
// activations, Q8_0 against Q8_0 activations with their block sums.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "cpu/kernels.h"
#include "cpu/packed.h"
#include "cpu/packed_layout.h"
#include "cpu/packed_q45_scales.h"
#include "quant/blocks.h"

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on their own _mm512_undefined_*() helpers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace yiti::cpu {

namespace {


inline __m512i bcast32(const void* p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}
inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
// A line used by two instructions: GCC otherwise folds the load into both, and the second load of
// each streamed line costs a decode thread 4-5% of its bandwidth (measured on the Q4_K kernel).
inline __m512i load_once(const void* p) {
    __m512i v = _mm512_loadu_si512(p);
    __asm__("" : "+v"(v));
    return v;
}
inline __m128i load128(const void* p) { return _mm_loadu_si128((const __m128i*)p); }
inline __m512 load_f16x16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
inline __mmask16 row_mask(int nr) { return (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1); }

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// Decode streams the weights once from memory: prefetching each block's lines ahead keeps enough
// requests in flight for a core to reach (measured) 10-20% more bandwidth than the hardware
// prefetchers alone give it. Inline asm: GCC silently drops _mm_prefetch here.
// Two distances: into L1 ~1.5 KB ahead, and into L2 further ahead, by type (Packed.DISABLED_Stream,
// 2 threads, 3 interleaved runs of 4096/6144/8192 bytes: Q4_K/Q5_K best at 6 KB, Q8_0 at 4 KB; Q8_0
// gained ~4% from having the far prefetch at all. Q6_K's three-line layout, 2 runs of 4/6/8/12 KB:
// 31.3-31.6 / 30.0 / 29.7-29.8 / 29.7-29.8 GB/s; then 5 runs of 3 against 4 KB: median 32.0 vs 31.6,
// 2 KB was slower). The near distance: 768 / 1536 B, 6 interleaved runs, same medians for every type.
constexpr size_t kPrefetchNear = 1536, kFarQ45 = 6144, kFarQ6 = 3072, kFarQ8 = 4096;
// Line l of the block at p: into L1 kPrefetchNear ahead and into L2 Far ahead.
template <size_t Far>
inline void pf_line(const char* p, size_t l) {
    __asm__ volatile("prefetcht0 %0" ::"m"(*(p + kPrefetchNear + 64 * l)));
    if constexpr (Far > 0) __asm__ volatile("prefetcht1 %0" ::"m"(*(p + Far + 64 * l)));
}

// The reference's packing of Q4_K / Q5_K 6-bit scales and mins.
inline void scale_min_k4(int j, const uint8_t* s, int* sc, int* mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// ------------------------------------------------------------------------------------------------
// Packing (scalar; runs once at load)

// A Q4_K / Q5_K row's 12 scale bytes into lane r of the packed group's scale words.
void pack_k4_scales(const uint8_t* scales, uint32_t (*w)[kPR], int r) {
    int sc[8], mn[8];
    for (int j = 0; j < 8; ++j) scale_min_k4(j, scales, &sc[j], &mn[j]);
    pack_q45_scales(sc, mn, w, r);
}

template <class P>
size_t group_bytes_k(int64_t n_in) {
    return (size_t)(n_in / QK_K) * sizeof(P);
}

void pack_q4_K(const void* src, size_t ld, int nr, void* dst, int64_t n_in) {
    const int64_t nb = n_in / QK_K;
    PQ4K* out = (PQ4K*)dst;
    memset(out, 0, (size_t)nb * sizeof(PQ4K));
    for (int64_t i = 0; i < nb; ++i) {
        PQ4K& o = out[i];
        for (int r = 0; r < nr; ++r) {
            const block_q4_K& b = ((const block_q4_K*)((const uint8_t*)src + (size_t)r * ld))[i];
            o.d[r] = b.d;
            o.dmin[r] = b.dmin;
            pack_k4_scales(b.scales, o.w, r);
            // Source: elements 64p + l (l < 32) are the low nibbles of qs[32p + l], 64p + 32 + l the high.
            for (int p = 0; p < 4; ++p)
                for (int k = 0; k < 8; ++k)
                    for (int t = 0; t < 4; ++t) o.qs[p][k][r][t] = b.qs[32 * p + 4 * k + t];
        }
    }
}

void pack_q5_K(const void* src, size_t ld, int nr, void* dst, int64_t n_in) {
    const int64_t nb = n_in / QK_K;
    PQ5K* out = (PQ5K*)dst;
    memset(out, 0, (size_t)nb * sizeof(PQ5K));
    for (int64_t i = 0; i < nb; ++i) {
        PQ5K& o = out[i];
        for (int r = 0; r < nr; ++r) {
            const block_q5_K& b = ((const block_q5_K*)((const uint8_t*)src + (size_t)r * ld))[i];
            o.d[r] = b.d;
            o.dmin[r] = b.dmin;
            pack_k4_scales(b.scales, o.w, r);
            for (int p = 0; p < 4; ++p)
                for (int k = 0; k < 8; ++k)
                    for (int t = 0; t < 4; ++t) o.qs[p][k][r][t] = b.qs[32 * p + 4 * k + t];
            // Source: element 32c + l has bit c of qh[l] as its bit 4.
            for (int k = 0; k < 8; ++k)
                for (int t = 0; t < 4; ++t) o.qh[k][r][t] = b.qh[4 * k + t];
        }
    }
}

void pack_q6_K(const void* src, size_t ld, int nr, void* dst, int64_t n_in) {
    const int64_t nb = n_in / QK_K;
    PQ6K* out = (PQ6K*)dst;
    memset(out, 0, (size_t)nb * sizeof(PQ6K));
    for (int64_t i = 0; i < nb; ++i) {
        PQ6K& o = out[i];
        for (int r = 0; r < nr; ++r) {
            const block_q6_K& b = ((const block_q6_K*)((const uint8_t*)src + (size_t)r * ld))[i];
            o.d[r] = b.d;
            for (int k = 0; k < 16; ++k) o.sc[k][r] = b.scales[k];
            // Source: in half h, element 128h + 32j + l takes its low 4 bits from ql[64h + 32(j%2) + l]
            // (low nibble for j < 2, high for j >= 2) and bits 4..5 from bits 2j..2j+1 of qh[32h + l].
            uint8_t u[QK_K];
            for (int e = 0; e < QK_K; ++e) {
                const int h = e / 128, j = (e % 128) / 32, l = e % 32;
                const int low = (b.ql[64 * h + 32 * (j % 2) + l] >> (4 * (j / 2))) & 0x0F;
                const int high = (b.qh[32 * h + l] >> (2 * j)) & 3;
                u[e] = (uint8_t)(low | (high << 4));
            }
            for (int g = 0; g < 2; ++g)
                for (int k = 0; k < 8; ++k)
                    for (int t = 0; t < 4; ++t) {
                        const int e = 4 * k + t;
                        const int c = u[32 * (4 * g + 2) + e];
                        o.q[g][k][0][r][t] = (uint8_t)(u[32 * (4 * g) + e] | (c & 3) << 6);
                        o.q[g][k][1][r][t] = (uint8_t)(u[32 * (4 * g + 1) + e] | (c >> 2 & 3) << 6);
                        o.q[g][k][2][r][t] = (uint8_t)(u[32 * (4 * g + 3) + e] | (c >> 4) << 6);
                    }
        }
    }
}

size_t group_bytes_q8_0(int64_t n_in) { return (size_t)((n_in / QK8_0 + 1) / 2) * sizeof(PQ80x2); }

void pack_q8_0(const void* src, size_t ld, int nr, void* dst, int64_t n_in) {
    const int64_t nb = n_in / QK8_0;
    PQ80x2* out = (PQ80x2*)dst;
    const int64_t np = (nb + 1) / 2;
    memset(out, 0, (size_t)np * sizeof(PQ80x2));
    for (int64_t i = 0; i < np * 2; ++i) {
        PQ80x2& o = out[i / 2];
        const int h = (int)(i % 2);
        for (int r = 0; r < kPR; ++r)
            for (int k = 0; k < 8; ++k)
                for (int t = 0; t < 4; ++t) o.qs[h][k][r][t] = 128;  // missing rows and blocks: q = 0
        if (i >= nb) continue;
        for (int r = 0; r < nr; ++r) {
            const block_q8_0& b = ((const block_q8_0*)((const uint8_t*)src + (size_t)r * ld))[i];
            o.d[h][r] = b.d;
            for (int k = 0; k < 8; ++k)
                for (int t = 0; t < 4; ++t) o.qs[h][k][r][t] = (uint8_t)(b.qs[4 * k + t] + 128);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Activations

size_t act_bytes_q8_K(int64_t n) { return (size_t)(n / QK_K) * sizeof(ActQ8K); }
void quantize_act_q8_K(const float* x, void* dst, int64_t n) {
    // The Q8_K quantization every k-quant kernel uses, then this kernel's block form.
    const CpuKernels* k = cpu_kernels(DType::Q4_K);
    ActQ8K* y = (ActQ8K*)dst;
    block_q8_K tmp[4];
    for (int64_t b0 = 0; b0 < n / QK_K; b0 += 4) {
        const int64_t m = n / QK_K - b0 < 4 ? n / QK_K - b0 : 4;
        k->from_float(x + b0 * QK_K, tmp, m * QK_K);
        for (int64_t i = 0; i < m; ++i) {
            ActQ8K& a = y[b0 + i];
            memcpy(a.qs, tmp[i].qs, sizeof a.qs);
            a.d = tmp[i].d;
            memcpy(a.bsums, tmp[i].bsums, sizeof a.bsums);
            for (int k = 0; k < 8; ++k) a.bsum32[k] = (int16_t)(tmp[i].bsums[2 * k] + tmp[i].bsums[2 * k + 1]);
            memset(a.pad, 0, sizeof a.pad);
        }
    }
}

size_t act_bytes_q8_0(int64_t n) { return (size_t)(n / QK8_0) * sizeof(ActQ80); }
void quantize_act_q8_0(const float* x, void* dst, int64_t n) {
    // The Q8_0 quantization every Q8_0 kernel uses, then this kernel's block form.
    const CpuKernels* k = cpu_kernels(DType::Q8_0);
    const int64_t nb = n / QK8_0;
    constexpr int64_t kChunk = 64;
    block_q8_0 tmp[kChunk];
    ActQ80* y = (ActQ80*)dst;
    for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
        const int64_t m = nb - b0 < kChunk ? nb - b0 : kChunk;
        k->from_float(x + b0 * QK8_0, tmp, m * QK8_0);
        for (int64_t i = 0; i < m; ++i) {
            ActQ80& a = y[b0 + i];
            a.d = h2f(tmp[i].d);
            memcpy(a.qs, tmp[i].qs, 32);
            int s = 0;
            for (int t = 0; t < 32; ++t) s += tmp[i].qs[t];
            a.s128 = 128 * s;
            memset(a.pad, 0, sizeof a.pad);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Kernels: one group of 16 rows against NC columns.

// One step p (sub-blocks 2p and 2p + 1) of a block.
template <bool Q5, int NC, int p, class P>
inline void q45_step(const P& b, const Q45Scales& scl, const ActQ8K* const* xs, int64_t i, __m512i* isum, __m512i* msum) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512i da[NC], db[NC];
    for (int c = 0; c < NC; ++c) da[c] = db[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
        // Decode: the block's prefetches spread over its loads, one line near and one far per 64
        // bytes of quants (issued in one burst at the block's start they cost 5-10% of a thread's
        // stream), the last lines after the quants.
        if constexpr (NC == 1) pf_line<kFarQ45>((const char*)&b, (size_t)(8 * p + k));
        const __m512i v = load_once(b.qs[p][k]);
        __m512i lo = _mm512_and_si512(v, m4);
        // Q4_K: the high nibbles masked in place (16 x their value, scaled back exactly below).
        __m512i hi = Q5 ? _mm512_and_si512(_mm512_srli_epi16(v, 4), m4) : _mm512_andnot_si512(m4, v);
        if constexpr (Q5) {
            const __m512i h = load_once(b.qh[k]);
            // bit (2p) -> bit 4 for lo, bit (2p + 1) -> bit 4 for hi
            const __m512i b4 = _mm512_set1_epi8(0x10);
            const __m512i hl = _mm512_and_si512(_mm512_rorv_epi32(h, _mm512_set1_epi32(2 * p + 28)), b4);
            const __m512i hh = _mm512_and_si512(_mm512_rorv_epi32(h, _mm512_set1_epi32(2 * p + 29)), b4);
            lo = _mm512_or_si512(lo, hl);
            hi = _mm512_or_si512(hi, hh);
        }
        for (int c = 0; c < NC; ++c) {
            da[c] = _mm512_dpbusd_epi32(da[c], lo, bcast32(xs[c][i].qs + 64 * p + 4 * k));
            db[c] = _mm512_dpbusd_epi32(db[c], hi, bcast32(xs[c][i].qs + 64 * p + 32 + 4 * k));
        }
    }
    const __m512i sca = scl.template sc<2 * p>(), scb = scl.template sc<2 * p + 1>();
    const __m512i mp = scl.template mn_pair<p>();  // (mn[2p], mn[2p + 1]) int16 pairs
    for (int c = 0; c < NC; ++c) {
        if constexpr (!Q5) db[c] = _mm512_srai_epi32(db[c], 4);
        isum[c] = _mm512_add_epi32(isum[c], _mm512_add_epi32(_mm512_mullo_epi32(da[c], sca), _mm512_mullo_epi32(db[c], scb)));
        msum[c] = _mm512_dpwssd_epi32(msum[c], mp, bcast32(xs[c][i].bsum32 + 2 * p));
    }
}

// Q4_K and Q5_K (Q5 = true adds the fifth bit).
template <bool Q5, int NC>
inline void gemm_q45_K_tile(int64_t nb, const uint8_t* wg, const ActQ8K* const* xs, __m512* acc) {
    for (int c = 0; c < NC; ++c) acc[c] = _mm512_setzero_ps();
    using P = std::conditional_t<Q5, PQ5K, PQ4K>;
    const P* B = (const P*)wg;
    for (int64_t i = 0; i < nb; ++i) {
        const P& b = B[i];
        const Q45Scales scl(b.w);
        __m512i isum[NC], msum[NC];
        for (int c = 0; c < NC; ++c) isum[c] = msum[c] = _mm512_setzero_si512();
        q45_step<Q5, NC, 0>(b, scl, xs, i, isum, msum);
        q45_step<Q5, NC, 1>(b, scl, xs, i, isum, msum);
        q45_step<Q5, NC, 2>(b, scl, xs, i, isum, msum);
        q45_step<Q5, NC, 3>(b, scl, xs, i, isum, msum);
        if constexpr (NC == 1)
            for (size_t l = 32; l < (sizeof(P) + 63) / 64; ++l) pf_line<kFarQ45>((const char*)&b, l);
        const __m512 d = load_f16x16(b.d), dm = load_f16x16(b.dmin);
        for (int c = 0; c < NC; ++c) {
            const __m512 yd = _mm512_set1_ps(xs[c][i].d);
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(d, yd), _mm512_cvtepi32_ps(isum[c]), acc[c]);
            acc[c] = _mm512_fnmadd_ps(_mm512_mul_ps(dm, yd), _mm512_cvtepi32_ps(msum[c]), acc[c]);
        }
    }
}

// Q6_K, half h (16 elements) of the four sub-blocks 4g .. 4g + 3: the three lines of each k give
// u of sub-blocks 4g, 4g + 1, 4g + 3 (bits 0..5) and, in their bits 6..7, 64 x the three 2-bit parts of
// sub-block 4g + 2, each dotted in place and combined exactly (sum / 64 is exact) before its scale.
template <int NC, int g, int h>
inline void q6_half(const PQ6K& b, const ActQ8K* const* xs, int64_t i, __m512i* isum) {
    constexpr int jA = 4 * g, jB = 4 * g + 1, jC = 4 * g + 2, jD = 4 * g + 3;
    const __m512i m6 = _mm512_set1_epi8(0x3F);
    __m512i sa[NC], sb[NC], sd[NC], c0[NC], c1[NC], c2[NC];
    for (int c = 0; c < NC; ++c) sa[c] = sb[c] = sd[c] = c0[c] = c1[c] = c2[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int kk = 0; kk < 4; ++kk) {
        const int k = 4 * h + kk;
        if constexpr (NC == 1)  // decode: lines 0..47 of the block's prefetches spread over its loads
            for (int l = 0; l < 3; ++l) pf_line<kFarQ6>((const char*)&b, (size_t)(3 * (8 * g + k) + l));
        const __m512i v0 = load_once(b.q[g][k][0]), v1 = load_once(b.q[g][k][1]), v2 = load_once(b.q[g][k][2]);
        const __m512i ua = _mm512_and_si512(v0, m6), ub = _mm512_and_si512(v1, m6), ud = _mm512_and_si512(v2, m6);
        const __m512i e0 = _mm512_andnot_si512(m6, v0), e1 = _mm512_andnot_si512(m6, v1), e2 = _mm512_andnot_si512(m6, v2);
        for (int c = 0; c < NC; ++c) {
            const int8_t* x = xs[c][i].qs + 4 * k;
            sa[c] = _mm512_dpbusd_epi32(sa[c], ua, bcast32(x + 32 * jA));
            sb[c] = _mm512_dpbusd_epi32(sb[c], ub, bcast32(x + 32 * jB));
            sd[c] = _mm512_dpbusd_epi32(sd[c], ud, bcast32(x + 32 * jD));
            const __m512i xc = bcast32(x + 32 * jC);
            c0[c] = _mm512_dpbusd_epi32(c0[c], e0, xc);
            c1[c] = _mm512_dpbusd_epi32(c1[c], e1, xc);
            c2[c] = _mm512_dpbusd_epi32(c2[c], e2, xc);
        }
    }
    const __m512i scA = _mm512_cvtepi8_epi32(load128(b.sc[2 * jA + h])), scB = _mm512_cvtepi8_epi32(load128(b.sc[2 * jB + h]));
    const __m512i scC = _mm512_cvtepi8_epi32(load128(b.sc[2 * jC + h])), scD = _mm512_cvtepi8_epi32(load128(b.sc[2 * jD + h]));
    for (int c = 0; c < NC; ++c) {
        // 64 x (u of 4g + 2) . x = c0 + 4 c1 + 16 c2 (each a multiple of 64).
        const __m512i uc = _mm512_srai_epi32(_mm512_add_epi32(c0[c], _mm512_add_epi32(_mm512_slli_epi32(c1[c], 2), _mm512_slli_epi32(c2[c], 4))), 6);
        const __m512i ab = _mm512_add_epi32(_mm512_mullo_epi32(sa[c], scA), _mm512_mullo_epi32(sb[c], scB));
        const __m512i cd = _mm512_add_epi32(_mm512_mullo_epi32(uc, scC), _mm512_mullo_epi32(sd[c], scD));
        isum[c] = _mm512_add_epi32(isum[c], _mm512_add_epi32(ab, cd));
    }
}

template <int NC>
inline void gemm_q6_K_tile(int64_t nb, const uint8_t* wg, const ActQ8K* const* xs, __m512* acc) {
    for (int c = 0; c < NC; ++c) acc[c] = _mm512_setzero_ps();
    const PQ6K* B = (const PQ6K*)wg;
    // int16 lane pairs (sc[2m][r], sc[2m + 1][r]) from the 32 int16 [sc[2m][0..15], sc[2m + 1][0..15]].
    const __m512i pair_idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                              6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int64_t i = 0; i < nb; ++i) {
        const PQ6K& b = B[i];
        __m512i isum[NC], off[NC];
        for (int c = 0; c < NC; ++c) isum[c] = off[c] = _mm512_setzero_si512();
        q6_half<NC, 0, 0>(b, xs, i, isum);
        q6_half<NC, 0, 1>(b, xs, i, isum);
        q6_half<NC, 1, 0>(b, xs, i, isum);
        q6_half<NC, 1, 1>(b, xs, i, isum);
        if constexpr (NC == 1)  // the block's last lines (it spans 53)
            for (size_t l = 48; l < (sizeof(PQ6K) + 63) / 64; ++l) pf_line<kFarQ6>((const char*)&b, l);
        // The stored offset: q = u - 32, so isum -= 32 * sum_k sc[k] * bsums[k].
#pragma GCC unroll 8
        for (int m = 0; m < 8; ++m) {
            const __m512i s = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)b.sc[2 * m]));
            const __m512i sp = _mm512_permutexvar_epi16(pair_idx, s);
            for (int c = 0; c < NC; ++c) off[c] = _mm512_dpwssd_epi32(off[c], sp, bcast32(xs[c][i].bsums + 2 * m));
        }
        const __m512 d = load_f16x16(b.d);
        for (int c = 0; c < NC; ++c) {
            const __m512i tot = _mm512_sub_epi32(isum[c], _mm512_slli_epi32(off[c], 5));
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(xs[c][i].d)), _mm512_cvtepi32_ps(tot), acc[c]);
        }
    }
}

template <int NC>
inline void gemm_q8_0_tile(int64_t nb, const uint8_t* wg, const ActQ80* const* xs, __m512* acc) {
    for (int c = 0; c < NC; ++c) acc[c] = _mm512_setzero_ps();
    const PQ80x2* B = (const PQ80x2*)wg;
    for (int64_t i = 0; i < nb; ++i) {
        const PQ80x2& b = B[i / 2];
        const int h = (int)(i & 1);
        __m512i dot[NC];
        for (int c = 0; c < NC; ++c) dot[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int k = 0; k < 8; ++k) {
            if constexpr (NC == 1) {  // decode: the pair's 17 lines, spread over its loads
                pf_line<kFarQ8>((const char*)&b, (size_t)(8 * h + k));
                if (h == 1 && k == 7) pf_line<kFarQ8>((const char*)&b, 16);
            }
            const __m512i w = load512(b.qs[h][k]);
            for (int c = 0; c < NC; ++c) dot[c] = _mm512_dpbusd_epi32(dot[c], w, bcast32(xs[c][i].qs + 4 * k));
        }
        const __m512 d = load_f16x16(b.d[h]);
        for (int c = 0; c < NC; ++c) {
            const __m512i isum = _mm512_sub_epi32(dot[c], _mm512_set1_epi32(xs[c][i].s128));
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(xs[c][i].d)), _mm512_cvtepi32_ps(isum), acc[c]);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Column loop: tiles of up to kNC columns.

constexpr int kNC = 4;

template <class A, template <int> class K>
void gemm_cols(int64_t nb, float* s, size_t ld_s, const void* group, int nr, const void* x, size_t ld_x, int nc) {
    const __mmask16 m = row_mask(nr);
    for (int c0 = 0; c0 < nc; c0 += kNC) {
        const int cn = nc - c0 < kNC ? nc - c0 : kNC;
        const A* xs[kNC];
        for (int c = 0; c < cn; ++c) xs[c] = (const A*)((const uint8_t*)x + (size_t)(c0 + c) * ld_x);
        __m512 acc[kNC];
        switch (cn) {
            case 1: K<1>::run(nb, (const uint8_t*)group, xs, acc); break;
            case 2: K<2>::run(nb, (const uint8_t*)group, xs, acc); break;
            case 3: K<3>::run(nb, (const uint8_t*)group, xs, acc); break;
            default: K<4>::run(nb, (const uint8_t*)group, xs, acc); break;
        }
        for (int c = 0; c < cn; ++c) _mm512_mask_storeu_ps(s + (size_t)(c0 + c) * ld_s, m, acc[c]);
    }
}

template <int NC>
struct KQ4 {
    static void run(int64_t nb, const uint8_t* w, const ActQ8K* const* xs, __m512* acc) {
        gemm_q45_K_tile<false, NC>(nb, w, xs, acc);
    }
};
template <int NC>
struct KQ5 {
    static void run(int64_t nb, const uint8_t* w, const ActQ8K* const* xs, __m512* acc) {
        gemm_q45_K_tile<true, NC>(nb, w, xs, acc);
    }
};
template <int NC>
struct KQ6 {
    static void run(int64_t nb, const uint8_t* w, const ActQ8K* const* xs, __m512* acc) {
        gemm_q6_K_tile<NC>(nb, w, xs, acc);
    }
};
template <int NC>
struct KQ80 {
    static void run(int64_t nb, const uint8_t* w, const ActQ80* const* xs, __m512* acc) {
        gemm_q8_0_tile<NC>(nb, w, xs, acc);
    }
};

void gemm_q4_K(int64_t n, float* s, size_t ld_s, const void* g, int nr, const void* x, size_t ld_x, int nc) {
    gemm_cols<ActQ8K, KQ4>(n / QK_K, s, ld_s, g, nr, x, ld_x, nc);
}
void gemm_q5_K(int64_t n, float* s, size_t ld_s, const void* g, int nr, const void* x, size_t ld_x, int nc) {
    gemm_cols<ActQ8K, KQ5>(n / QK_K, s, ld_s, g, nr, x, ld_x, nc);
}
void gemm_q6_K(int64_t n, float* s, size_t ld_s, const void* g, int nr, const void* x, size_t ld_x, int nc) {
    gemm_cols<ActQ8K, KQ6>(n / QK_K, s, ld_s, g, nr, x, ld_x, nc);
}
void gemm_q8_0(int64_t n, float* s, size_t ld_s, const void* g, int nr, const void* x, size_t ld_x, int nc) {
    gemm_cols<ActQ80, KQ80>(n / QK8_0, s, ld_s, g, nr, x, ld_x, nc);
}

const PackedKernels k_q4_K = {DType::Q4_K, group_bytes_k<PQ4K>, pack_q4_K, act_bytes_q8_K, quantize_act_q8_K, gemm_q4_K, nullptr};
const PackedKernels k_q5_K = {DType::Q5_K, group_bytes_k<PQ5K>, pack_q5_K, act_bytes_q8_K, quantize_act_q8_K, gemm_q5_K, nullptr};
const PackedKernels k_q6_K = {DType::Q6_K, group_bytes_k<PQ6K>, pack_q6_K, act_bytes_q8_K, quantize_act_q8_K, gemm_q6_K, nullptr};
const PackedKernels k_q8_0 = {DType::Q8_0, group_bytes_q8_0, pack_q8_0, act_bytes_q8_0, quantize_act_q8_0, gemm_q8_0, nullptr};

PackedKernels with_amx(PackedKernels k, decltype(PackedKernels::gemm_amx) f) {
    k.gemm_amx = f;
    return k;
}

}  // namespace

const PackedKernels* packed_kernels_avx512vnni(DType t) {
    static const bool amx = amx_available();
    static const PackedKernels a_q4_K = with_amx(k_q4_K, gemm_amx_q4_K), a_q5_K = with_amx(k_q5_K, gemm_amx_q5_K),
                               a_q6_K = with_amx(k_q6_K, gemm_amx_q6_K), a_q8_0 = with_amx(k_q8_0, gemm_amx_q8_0);
    switch (t) {
        case DType::Q4_K: return amx ? &a_q4_K : &k_q4_K;
        case DType::Q5_K: return amx ? &a_q5_K : &k_q5_K;
        case DType::Q6_K: return amx ? &a_q6_K : &k_q6_K;
        case DType::Q8_0: return amx ? &a_q8_0 : &k_q8_0;
        default: return nullptr;
    }
}

}  // namespace yiti::cpu
