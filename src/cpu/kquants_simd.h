// k-quant kernels (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS x Q8_K) written once with 256-bit integer
// intrinsics and compiled per instruction set. Include only from an ISA source file, after defining
//   KQ_VNNI      1 to use vpdpbusd / vpdpwssd (AVX512-VNNI + VL on 256-bit registers), else 0
//   KQ_MAXNC     activation columns per gemm tile (4 for 16 vector registers, 8 for 32)
//   KQ_EXPORT    the name of the table function (declared in kquants_impl.h)
// Everything here has internal linkage so the copies built with different flags never mix.
//
// Every weight format is read through the same model as the reference (src/quant/ref_kquants.cpp):
// per 32-element chunk j, 32 small unsigned integers q (IQ4_XS: |value| plus the signed value for the
// sign trick), int16 scales for its two 16-element halves, and per block sixteen int16 "min"
// multipliers applied to the Q8_K bsums. For a Q8_K block y (x = y.d * y.qs):
//   isum = sum_j madd(maddubs(q_j, y.qs_j), scales_j)   (exact int32 per lane; with VNNI and unsigned
//          quants: vpdpbusd per chunk, two chunks packed to int16, one vpdpwssd with the scales)
//   Q3_K / Q6_K store q + 4 / q + 32: the offset is folded in as isum += madd(-4*sc | -32*sc, bsums),
//   and the lanes are summed to the exact integer block total before the float scaling
//   Q2_K / Q4_K / Q5_K: result = d*y.d*isum - dmin*y.d*madd(mins, bsums)
// so the integer part equals the reference exactly and only the float accumulation order differs.
#pragma once
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "cpu/kernels.h"
#include "cpu/kquants_impl.h"
#include "quant/blocks.h"

#ifndef KQ_VNNI
#error "define KQ_VNNI before including kquants_simd.h"
#endif

namespace yiti::cpu::kq {
namespace {

// ------------------------------------------------------------------------------------------------
// Small helpers

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

inline __m256i load256(const void* p) { return _mm256_loadu_si256((const __m256i*)p); }
inline __m128i load128(const void* p) { return _mm_loadu_si128((const __m128i*)p); }

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// acc + madd(a, b): int16 pairs multiplied and summed into int32 lanes.
inline __m256i dot_acc(__m256i acc, __m256i a, __m256i b) {
#if KQ_VNNI
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

// pshufb controls that broadcast one int16 of a 128-bit-broadcast vector of 8 int16 scales.
// k_ctrl32[j]: both halves pick scale j (a 32-element sub-block per chunk).
// k_ctrl16[j]: low half picks scale 2j, high half picks scale 2j+1 (16-element sub-blocks).
alignas(32) const uint8_t k_ctrl32[8][32] = {
#define KQ_R(j) 2 * (j), 2 * (j) + 1
#define KQ_ROW(j)                                                                                      \
    {KQ_R(j), KQ_R(j), KQ_R(j), KQ_R(j), KQ_R(j), KQ_R(j), KQ_R(j), KQ_R(j),                           \
     KQ_R(j), KQ_R(j), KQ_R(j), KQ_R(j), KQ_R(j), KQ_R(j), KQ_R(j), KQ_R(j)}
    KQ_ROW(0), KQ_ROW(1), KQ_ROW(2), KQ_ROW(3), KQ_ROW(4), KQ_ROW(5), KQ_ROW(6), KQ_ROW(7),
#undef KQ_ROW
};
alignas(32) const uint8_t k_ctrl16[4][32] = {
#define KQ_ROW(j)                                                                                      \
    {KQ_R(2 * (j)),     KQ_R(2 * (j)),     KQ_R(2 * (j)),     KQ_R(2 * (j)),                            \
     KQ_R(2 * (j)),     KQ_R(2 * (j)),     KQ_R(2 * (j)),     KQ_R(2 * (j)),                            \
     KQ_R(2 * (j) + 1), KQ_R(2 * (j) + 1), KQ_R(2 * (j) + 1), KQ_R(2 * (j) + 1),                        \
     KQ_R(2 * (j) + 1), KQ_R(2 * (j) + 1), KQ_R(2 * (j) + 1), KQ_R(2 * (j) + 1)}
    KQ_ROW(0), KQ_ROW(1), KQ_ROW(2), KQ_ROW(3),
#undef KQ_ROW
#undef KQ_R
};

// Scales for a chunk pair (2jp, 2jp+1) in the lane order of packs_epi32(dpbusd(a), dpbusd(b)):
// int16 lanes 0-3: elements 0-15 of chunk a, 4-7: elements 0-15 of chunk b, 8-11: elements 16-31 of a,
// 12-15: elements 16-31 of b.
// k_pair32[jp]: 32-element sub-blocks (a = sub-block 2jp, b = 2jp+1), index into 8 broadcast scales.
// k_pair16[jp%2]: 16-element sub-blocks, index into the 8 scales of sc_lo (jp < 2) or sc_hi.
#define KQ_Q(k) 2 * (k), 2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k), 2 * (k) + 1, 2 * (k), 2 * (k) + 1
alignas(32) const uint8_t k_pair32[4][32] = {
    {KQ_Q(0), KQ_Q(1), KQ_Q(0), KQ_Q(1)},
    {KQ_Q(2), KQ_Q(3), KQ_Q(2), KQ_Q(3)},
    {KQ_Q(4), KQ_Q(5), KQ_Q(4), KQ_Q(5)},
    {KQ_Q(6), KQ_Q(7), KQ_Q(6), KQ_Q(7)},
};
alignas(32) const uint8_t k_pair16[2][32] = {
    {KQ_Q(0), KQ_Q(2), KQ_Q(1), KQ_Q(3)},
    {KQ_Q(4), KQ_Q(6), KQ_Q(5), KQ_Q(7)},
};
#undef KQ_Q

inline __m256i pair32(__m256i sc8, int jp) { return _mm256_shuffle_epi8(sc8, load256(k_pair32[jp])); }
inline __m256i pair16(__m256i lo, __m256i hi, int jp) {
    return _mm256_shuffle_epi8(jp < 2 ? lo : hi, load256(k_pair16[jp & 1]));
}

inline __m256i scale32(__m256i sc8, int j) { return _mm256_shuffle_epi8(sc8, load256(k_ctrl32[j])); }
inline __m256i scale16(__m256i lo, __m256i hi, int j) {
    return _mm256_shuffle_epi8(j < 4 ? lo : hi, load256(k_ctrl16[j & 3]));
}

// Bit b of every byte of v moved to bit t (other bits garbage-free: masked to that single bit).
template <int b, int t>
inline __m256i bit_to(__m256i v) {
    const __m256i m = _mm256_set1_epi8((char)(1 << t));
    if constexpr (t >= b) return _mm256_and_si256(_mm256_slli_epi16(v, t - b), m);
    else return _mm256_and_si256(_mm256_srli_epi16(v, b - t), m);
}

// ------------------------------------------------------------------------------------------------
// Scalar unpacking of the packed scales (the same definitions as the reference).

// Q4_K / Q5_K: 12 bytes -> bytes 0..7 scales, bytes 8..15 mins (6-bit each).
inline __m128i unpack_k4_scales(const uint8_t* s) {
    uint32_t u[3];
    memcpy(u, s, 12);
    const uint32_t sc_lo = u[0] & 0x3f3f3f3fu;
    const uint32_t sc_hi = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    const uint32_t mn_lo = u[1] & 0x3f3f3f3fu;
    const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    return _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)mn_lo, (int)mn_hi);
}

// Q3_K: 12 bytes -> 16 signed scales (int8, bias removed).
inline __m128i unpack_q3_scales(const uint8_t* s) {
    uint32_t u[3];
    memcpy(u, s, 12);
    const uint32_t a0 = (u[0] & 0x0f0f0f0fu) | (((u[2] >> 0) & 0x03030303u) << 4);
    const uint32_t a1 = (u[1] & 0x0f0f0f0fu) | (((u[2] >> 2) & 0x03030303u) << 4);
    const uint32_t a2 = ((u[0] >> 4) & 0x0f0f0f0fu) | (((u[2] >> 4) & 0x03030303u) << 4);
    const uint32_t a3 = ((u[1] >> 4) & 0x0f0f0f0fu) | (((u[2] >> 6) & 0x03030303u) << 4);
    return _mm_sub_epi8(_mm_setr_epi32((int)a0, (int)a1, (int)a2, (int)a3), _mm_set1_epi8(32));
}

// IQ4_XS: 8 signed scales (int16, bias removed).
inline __m128i unpack_iq4xs_scales(const block_iq4_xs& b) {
    uint32_t sl;
    memcpy(&sl, b.scales_l, 4);
    const __m128i lo = _mm_cvtsi32_si128((int)(sl & 0x0f0f0f0fu));
    const __m128i hi = _mm_cvtsi32_si128((int)((sl >> 4) & 0x0f0f0f0fu));
    const __m128i l16 = _mm_cvtepu8_epi16(_mm_unpacklo_epi8(lo, hi));
    // lane ib: (scales_h << (14 - 2 ib)) >> 14 == bits 2ib..2ib+1
    __m128i h16 = _mm_mullo_epi16(_mm_set1_epi16((short)b.scales_h),
                                  _mm_setr_epi16(1 << 14, 1 << 12, 1 << 10, 1 << 8, 1 << 6, 1 << 4, 1 << 2, 1));
    h16 = _mm_slli_epi16(_mm_srli_epi16(h16, 14), 4);
    return _mm_sub_epi16(_mm_or_si128(l16, h16), _mm_set1_epi16(32));
}

// ------------------------------------------------------------------------------------------------
// Per-format decoders. Each has:
//   kind       how the offset/min term enters (kNone, kIntMin: folded into isum, kAffine: dmin term)
//   kSigned    quants are signed (sign trick: maddubs(|w|, sign(x, w)))
//   State(b)   per-block setup (scales, mins, d, dmin)
//   quants(j)  chunk j (elements 32j..32j+31)
//   scales(j)  int16 scales matching maddubs output lanes of chunk j
// and, for to_float, value(j) (int8 signed values of chunk j) and the float per-16 scales.

enum MinKind { kNone, kIntMin, kAffine };

struct Quants {
    __m256i q;  // unsigned magnitudes for maddubs
    __m256i s;  // signed values (only for kSigned formats)
};

struct Q2K {
    using block = block_q2_K;
    static constexpr MinKind kind = kAffine;
    static constexpr bool kSigned = false;
    struct State {
        __m256i sc_lo, sc_hi, mn;
        float d, dmin;
        explicit State(const block& b) {
            const __m128i s = load128(b.scales);
            const __m128i sc = _mm_and_si128(s, _mm_set1_epi8(0x0F));
            sc_lo = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sc));
            sc_hi = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_srli_si128(sc, 8)));
            mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(0x0F)));
            d = f16(b.d);
            dmin = f16(b.dmin);
        }
    };
    static inline Quants quants(const block& b, const State&, int j) {
        const __m256i v = load256(b.qs + 32 * (j / 4));
        return {_mm256_and_si256(_mm256_srli_epi16(v, 2 * (j % 4)), _mm256_set1_epi8(3)), _mm256_setzero_si256()};
    }
    static inline __m256i scales(const State& st, int j) { return scale16(st.sc_lo, st.sc_hi, j); }
    static inline __m256i scales_pair(const State& st, int jp) { return pair16(st.sc_lo, st.sc_hi, jp); }
};

struct Q3K {
    using block = block_q3_K;
    static constexpr MinKind kind = kIntMin;
    static constexpr bool kSigned = false;
    struct State {
        __m256i sc_lo, sc_hi, mn, hm;
        float d, dmin;
        explicit State(const block& b) {
            const __m128i sc = unpack_q3_scales(b.scales);
            sc_lo = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(sc));
            sc_hi = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128(sc, 8)));
            mn = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(sc), _mm256_set1_epi16(-4));  // q is stored + 4
            hm = load256(b.hmask);
            d = f16(b.d);
            dmin = 0;
        }
    };
    template <int j>
    static inline Quants quants_t(const block& b, const State& st) {
        const __m256i v = load256(b.qs + 32 * (j / 4));
        const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(v, 2 * (j % 4)), _mm256_set1_epi8(3));
        return {_mm256_or_si256(lo, bit_to<j, 2>(st.hm)), _mm256_setzero_si256()};
    }
    static inline Quants quants(const block& b, const State& st, int j) {
        switch (j) {
            case 0: return quants_t<0>(b, st);
            case 1: return quants_t<1>(b, st);
            case 2: return quants_t<2>(b, st);
            case 3: return quants_t<3>(b, st);
            case 4: return quants_t<4>(b, st);
            case 5: return quants_t<5>(b, st);
            case 6: return quants_t<6>(b, st);
            default: return quants_t<7>(b, st);
        }
    }
    static inline __m256i scales(const State& st, int j) { return scale16(st.sc_lo, st.sc_hi, j); }
    static inline __m256i scales_pair(const State& st, int jp) { return pair16(st.sc_lo, st.sc_hi, jp); }
};

struct Q4K {
    using block = block_q4_K;
    static constexpr MinKind kind = kAffine;
    static constexpr bool kSigned = false;
    struct State {
        __m256i sc8, mn;
        float d, dmin;
        explicit State(const block& b) {
            const __m128i v = unpack_k4_scales(b.scales);
            sc8 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(v));
            const __m128i mins = _mm_shuffle_epi8(v, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14,
                                                                   14, 15, 15));
            mn = _mm256_cvtepu8_epi16(mins);
            d = f16(b.d);
            dmin = f16(b.dmin);
        }
    };
    static inline Quants quants(const block& b, const State&, int j) {
        const __m256i v = load256(b.qs + 32 * (j / 2));
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        return {(j & 1) ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4) : _mm256_and_si256(v, m4), _mm256_setzero_si256()};
    }
    static inline __m256i scales(const State& st, int j) { return scale32(st.sc8, j); }
    static inline __m256i scales_pair(const State& st, int jp) { return pair32(st.sc8, jp); }
};

struct Q5K {
    using block = block_q5_K;
    static constexpr MinKind kind = kAffine;
    static constexpr bool kSigned = false;
    struct State {
        __m256i sc8, mn, qh;
        float d, dmin;
        explicit State(const block& b) {
            const __m128i v = unpack_k4_scales(b.scales);
            sc8 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(v));
            const __m128i mins = _mm_shuffle_epi8(v, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14,
                                                                   14, 15, 15));
            mn = _mm256_cvtepu8_epi16(mins);
            qh = load256(b.qh);
            d = f16(b.d);
            dmin = f16(b.dmin);
        }
    };
    template <int j>
    static inline Quants quants_t(const block& b, const State& st) {
        const __m256i v = load256(b.qs + 32 * (j / 2));
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        const __m256i lo = (j & 1) ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4) : _mm256_and_si256(v, m4);
        return {_mm256_or_si256(lo, bit_to<j, 4>(st.qh)), _mm256_setzero_si256()};
    }
    static inline Quants quants(const block& b, const State& st, int j) {
        switch (j) {
            case 0: return quants_t<0>(b, st);
            case 1: return quants_t<1>(b, st);
            case 2: return quants_t<2>(b, st);
            case 3: return quants_t<3>(b, st);
            case 4: return quants_t<4>(b, st);
            case 5: return quants_t<5>(b, st);
            case 6: return quants_t<6>(b, st);
            default: return quants_t<7>(b, st);
        }
    }
    static inline __m256i scales(const State& st, int j) { return scale32(st.sc8, j); }
    static inline __m256i scales_pair(const State& st, int jp) { return pair32(st.sc8, jp); }
};

struct Q6K {
    using block = block_q6_K;
    static constexpr MinKind kind = kIntMin;
    static constexpr bool kSigned = false;
    struct State {
        __m256i sc_lo, sc_hi, mn;
        float d, dmin;
        explicit State(const block& b) {
            const __m128i sc = load128(b.scales);
            sc_lo = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(sc));
            sc_hi = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_srli_si128(sc, 8)));
            mn = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(sc), _mm256_set1_epi16(-32));  // q is stored + 32
            d = f16(b.d);
            dmin = 0;
        }
    };
    static inline Quants quants(const block& b, const State&, int j) {
        const int h = j / 4, jj = j % 4;
        const __m256i l = load256(b.ql + 64 * h + 32 * (jj % 2));
        const __m256i hh = load256(b.qh + 32 * h);
        const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
        const __m256i lo = jj < 2 ? _mm256_and_si256(l, m4) : _mm256_and_si256(_mm256_srli_epi16(l, 4), m4);
        __m256i hi;
        switch (jj) {
            case 0: hi = _mm256_slli_epi16(hh, 4); break;
            case 1: hi = _mm256_slli_epi16(hh, 2); break;
            case 2: hi = hh; break;
            default: hi = _mm256_srli_epi16(hh, 2); break;
        }
        return {_mm256_or_si256(lo, _mm256_and_si256(hi, m30)), _mm256_setzero_si256()};
    }
    static inline __m256i scales(const State& st, int j) { return scale16(st.sc_lo, st.sc_hi, j); }
    static inline __m256i scales_pair(const State& st, int jp) { return pair16(st.sc_lo, st.sc_hi, jp); }
};

struct IQ4XS {
    using block = block_iq4_xs;
    static constexpr MinKind kind = kNone;
    static constexpr bool kSigned = true;
    struct State {
        __m256i sc8, mn;
        float d, dmin;
        explicit State(const block& b) {
            sc8 = _mm256_broadcastsi128_si256(unpack_iq4xs_scales(b));
            d = f16(b.d);
            dmin = 0;
        }
    };
    static inline __m256i indices(const block& b, int j) {
        const __m128i v = load128(b.qs + 16 * j);
        const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
        return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
    }
    static inline Quants quants(const block& b, const State&, int j) {
        const __m256i idx = indices(b, j);
        const __m256i values = _mm256_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69,
                                                89, 113, -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38,
                                                53, 69, 89, 113);
        const __m256i mags = _mm256_setr_epi8(127, 104, 83, 65, 49, 35, 22, 10, 1, 13, 25, 38, 53, 69, 89, 113,
                                              127, 104, 83, 65, 49, 35, 22, 10, 1, 13, 25, 38, 53, 69, 89,
                                              113);
        return {_mm256_shuffle_epi8(mags, idx), _mm256_shuffle_epi8(values, idx)};
    }
    static inline __m256i scales(const State& st, int j) { return scale32(st.sc8, j); }
    static inline __m256i scales_pair(const State& st, int jp) { return pair32(st.sc8, jp); }
};

// ------------------------------------------------------------------------------------------------
// Dot products: one weight row against NC activation columns, each weight chunk decoded once.

// Integer part of one block against NC columns: isum[c] (8 int32 lanes whose total is
// sum_j scales_j . (q_j x_j) -- the reference's isum before the min term).
template <class T, int NC>
inline void block_isums(const typename T::block& b, const typename T::State& st, const block_q8_K* const* xs,
                        int64_t i, __m256i* isum) {
#if KQ_VNNI
    if constexpr (!T::kSigned) {
        // Unsigned quants: vpdpbusd sums 4 products per int32 lane (at most 4 * 63 * 127 = 32004,
        // so two chunks pack losslessly into int16), then one vpdpwssd applies the scales:
        // 3 multiply instructions per chunk pair instead of 4.
        constexpr int kSplit = NC <= 2 ? 2 : 1;
        __m256i isum2[NC];
        for (int c = 0; c < NC; ++c) isum[c] = isum2[c] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int jp = 0; jp < 4; ++jp) {
            const __m256i qa = T::quants(b, st, 2 * jp).q, qb = T::quants(b, st, 2 * jp + 1).q;
            const __m256i sc = T::scales_pair(st, jp);
#pragma GCC unroll 8
            for (int c = 0; c < NC; ++c) {
                const __m256i va = _mm256_dpbusd_epi32(_mm256_setzero_si256(), qa, load256(xs[c][i].qs + 64 * jp));
                const __m256i vb =
                    _mm256_dpbusd_epi32(_mm256_setzero_si256(), qb, load256(xs[c][i].qs + 64 * jp + 32));
                const __m256i p = _mm256_packs_epi32(va, vb);
                if (kSplit == 2 && (jp & 1)) isum2[c] = _mm256_dpwssd_epi32(isum2[c], p, sc);
                else isum[c] = _mm256_dpwssd_epi32(isum[c], p, sc);
            }
        }
        if constexpr (kSplit == 2)
            for (int c = 0; c < NC; ++c) isum[c] = _mm256_add_epi32(isum[c], isum2[c]);
        return;
    }
#endif
    // With few columns, two partial sums per column break the accumulate dependency chain
    // (vpdpwssd has a multi-cycle latency); with more columns the columns themselves interleave.
    constexpr int kSplit = (KQ_VNNI && NC <= 2) ? 2 : 1;
    __m256i isum2[NC];
    for (int c = 0; c < NC; ++c) isum[c] = isum2[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
        const Quants q = T::quants(b, st, j);
        const __m256i sc = T::scales(st, j);
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) {
            const __m256i x = load256(xs[c][i].qs + 32 * j);
            __m256i p;
            if constexpr (T::kSigned) p = _mm256_maddubs_epi16(q.q, _mm256_sign_epi8(x, q.s));
            else p = _mm256_maddubs_epi16(q.q, x);
            if (kSplit == 2 && (j & 1)) isum2[c] = dot_acc(isum2[c], p, sc);
            else isum[c] = dot_acc(isum[c], p, sc);
        }
    }
    if constexpr (kSplit == 2)
        for (int c = 0; c < NC; ++c) isum[c] = _mm256_add_epi32(isum[c], isum2[c]);
}

template <class T, int NC>
inline void dot_tile(int64_t nb, const typename T::block* w, const block_q8_K* const* xs, float* out) {
    __m256 acc[NC];
    __m128 acc1[NC];
    for (int c = 0; c < NC; ++c) {
        acc[c] = _mm256_setzero_ps();
        acc1[c] = _mm_setzero_ps();
    }
    for (int64_t i = 0; i < nb; ++i) {
        const typename T::block& b = w[i];
        const typename T::State st(b);
        __m256i isum[NC];
        block_isums<T, NC>(b, st, xs, i, isum);
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) {
            const block_q8_K& y = xs[c][i];
            if constexpr (T::kind == kIntMin) {
                // The stored-offset correction (-4*sc or -32*sc times bsums) lands in other lanes than
                // the products it cancels, so lanes can be much larger than the block total: reduce to
                // the exact integer total (the reference's isum) before converting to float.
                const __m256i v = dot_acc(isum[c], st.mn, load256(y.bsums));
                __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
                t = _mm_add_epi32(t, _mm_unpackhi_epi64(t, t));
                t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 1));
                acc1[c] = _mm_fmadd_ss(_mm_set_ss(st.d * y.d), _mm_cvtepi32_ps(t), acc1[c]);
            } else {
                acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(st.d * y.d), _mm256_cvtepi32_ps(isum[c]), acc[c]);
            }
            if constexpr (T::kind == kAffine) {
                const __m256i m = _mm256_madd_epi16(st.mn, load256(y.bsums));
                acc[c] = _mm256_fnmadd_ps(_mm256_set1_ps(st.dmin * y.d), _mm256_cvtepi32_ps(m), acc[c]);
            }
        }
    }
    for (int c = 0; c < NC; ++c) out[c] = T::kind == kIntMin ? _mm_cvtss_f32(acc1[c]) : hsum(acc[c]);
}

template <class T>
void vec_dot(int64_t n, float* s, const void* w, const void* x) {
    const block_q8_K* xs[1] = {(const block_q8_K*)x};
    dot_tile<T, 1>(n / QK_K, (const typename T::block*)w, xs, s);
}

template <class T>
void gemm(int64_t n, float* s, size_t ld_s, const void* w, size_t ld_w, int nr, const void* x, size_t ld_x,
          int nc) {
    const int64_t nb = n / QK_K;
    for (int c0 = 0; c0 < nc; c0 += KQ_MAXNC) {
        const int cn = nc - c0 < KQ_MAXNC ? nc - c0 : KQ_MAXNC;
        const block_q8_K* xs[KQ_MAXNC];
        for (int c = 0; c < cn; ++c) xs[c] = (const block_q8_K*)((const char*)x + (size_t)(c0 + c) * ld_x);
        for (int r = 0; r < nr; ++r) {
            const auto* wr = (const typename T::block*)((const char*)w + (size_t)r * ld_w);
            float out[KQ_MAXNC] = {};
            switch (cn) {
                case 1: dot_tile<T, 1>(nb, wr, xs, out); break;
                case 2: dot_tile<T, 2>(nb, wr, xs, out); break;
                case 3: dot_tile<T, 3>(nb, wr, xs, out); break;
#if KQ_MAXNC > 4
                case 4: dot_tile<T, 4>(nb, wr, xs, out); break;
                case 5: dot_tile<T, 5>(nb, wr, xs, out); break;
                case 6: dot_tile<T, 6>(nb, wr, xs, out); break;
                case 7: dot_tile<T, 7>(nb, wr, xs, out); break;
#endif
                default: dot_tile<T, KQ_MAXNC>(nb, wr, xs, out); break;
            }
            for (int c = 0; c < cn; ++c) s[(size_t)(c0 + c) * ld_s + r] = out[c];
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Dequantization: value = (d * sc) * q - (dmin * mn), in exactly the reference's float operations.

// Signed int8 values of chunk j (the reference's q[e]).
template <class T>
inline __m256i signed_values(const typename T::block& b, const typename T::State& st, int j) {
    const Quants q = T::quants(b, st, j);
    if constexpr (std::is_same_v<T, Q3K>) return _mm256_sub_epi8(q.q, _mm256_set1_epi8(4));
    else if constexpr (std::is_same_v<T, Q6K>) return _mm256_sub_epi8(q.q, _mm256_set1_epi8(32));
    else if constexpr (T::kSigned) return q.s;
    else return q.q;
}

template <class T>
void to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = (const typename T::block*)src;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const typename T::block& b = blocks[i];
        const typename T::State st(b);
        // Per-16 integer scales and mins, the same numbers the dot product uses.
        alignas(32) int16_t sc16[8][16];
        alignas(32) int16_t mn16[16];
        for (int j = 0; j < 8; ++j) _mm256_store_si256((__m256i*)sc16[j], T::scales(st, j));
        if constexpr (T::kind == kAffine) _mm256_store_si256((__m256i*)mn16, st.mn);
        float* y = dst + i * QK_K;
#pragma GCC unroll 2
        for (int j = 0; j < 8; ++j) {
            alignas(32) int8_t q[32];
            _mm256_store_si256((__m256i*)q, signed_values<T>(b, st, j));
            for (int half = 0; half < 2; ++half) {
                const __m256 dl = _mm256_set1_ps(st.d * (float)sc16[j][8 * half]);
                const __m256 ml =
                    _mm256_set1_ps(T::kind == kAffine ? st.dmin * (float)mn16[2 * j + half] : 0.0f);
                for (int k = 0; k < 2; ++k) {
                    const int off = 16 * half + 8 * k;
                    const __m256 v =
                        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(q + off))));
                    __m256 r = _mm256_mul_ps(dl, v);
                    if constexpr (T::kind == kAffine) r = _mm256_sub_ps(r, ml);
                    _mm256_storeu_ps(y + 32 * j + off, r);
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Q8_K quantization, byte-identical to the reference.

// The element of largest magnitude (the first one on ties), 0 for an all-zero block.
inline float q8_K_signed_max(const float* x) {
    // Signed max and min in four independent chains each (one chain would be latency-bound).
    __m256 h0 = _mm256_setzero_ps(), h1 = h0, h2 = h0, h3 = h0, l0 = h0, l1 = h0, l2 = h0, l3 = h0;
    for (int k = 0; k < QK_K; k += 32) {
        const __m256 a = _mm256_loadu_ps(x + k), b = _mm256_loadu_ps(x + k + 8);
        const __m256 c = _mm256_loadu_ps(x + k + 16), d = _mm256_loadu_ps(x + k + 24);
        h0 = _mm256_max_ps(h0, a);
        h1 = _mm256_max_ps(h1, b);
        h2 = _mm256_max_ps(h2, c);
        h3 = _mm256_max_ps(h3, d);
        l0 = _mm256_min_ps(l0, a);
        l1 = _mm256_min_ps(l1, b);
        l2 = _mm256_min_ps(l2, c);
        l3 = _mm256_min_ps(l3, d);
    }
    const __m256 hv = _mm256_max_ps(_mm256_max_ps(h0, h1), _mm256_max_ps(h2, h3));
    const __m256 lv = _mm256_min_ps(_mm256_min_ps(l0, l1), _mm256_min_ps(l2, l3));
    __m128 h4 = _mm_max_ps(_mm256_castps256_ps128(hv), _mm256_extractf128_ps(hv, 1));
    __m128 l4 = _mm_min_ps(_mm256_castps256_ps128(lv), _mm256_extractf128_ps(lv, 1));
    h4 = _mm_max_ps(h4, _mm_movehl_ps(h4, h4));
    l4 = _mm_min_ps(l4, _mm_movehl_ps(l4, l4));
    h4 = _mm_max_ss(h4, _mm_movehdup_ps(h4));
    l4 = _mm_min_ss(l4, _mm_movehdup_ps(l4));
    const float xhi = _mm_cvtss_f32(h4), xlo = _mm_cvtss_f32(l4);
    const float amax = xhi > -xlo ? xhi : -xlo;
    if (!(amax > 0)) return 0.0f;
    // Only when both +amax and -amax occur does the order matter (rare: scan for the first).
    if (xhi == amax && -xlo == amax) {
        const __m256 sign = _mm256_set1_ps(-0.0f), va = _mm256_set1_ps(amax);
        for (int k = 0; k < QK_K; k += 8) {
            const __m256 v = _mm256_loadu_ps(x + k);
            const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), va, _CMP_EQ_OQ));
            if (mask) return x[k + __builtin_ctz((unsigned)mask)];
        }
    }
    return xhi == amax ? xhi : xlo;
}

// Quantize one block given its largest-magnitude element vmax.
inline void quantize_q8_K_block(const float* x, float vmax, block_q8_K* y) {
    if (vmax == 0) {
        memset(y, 0, sizeof(block_q8_K));
        return;
    }
    const float iscale = -127.f / vmax;
    const __m256 vis = _mm256_set1_ps(iscale);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    __m256i quad[8];
    for (int c = 0; c < 8; ++c) {
        const float* p = x + 32 * c;
        const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(p)));
        const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(p + 8)));
        const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(p + 16)));
        const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(p + 24)));
        const __m256i p01 = _mm256_packs_epi32(i0, i1);
        const __m256i p23 = _mm256_packs_epi32(i2, i3);
        __m256i q = _mm256_packs_epi16(p01, p23);
        q = _mm256_permutevar8x32_epi32(q, perm);
        _mm256_storeu_si256((__m256i*)(y->qs + 32 * c), q);
        quad[c] = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
    }
    // quad[c] lanes 0..3: 4-sums of bytes 0..15 of chunk c, lanes 4..7: bytes 16..31.
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(quad[0], quad[1]), _mm256_hadd_epi32(quad[2], quad[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(quad[4], quad[5]), _mm256_hadd_epi32(quad[6], quad[7]));
    // a = [s0 s2 s4 s6 | s1 s3 s5 s7], b = [s8 .. s14 | s9 .. s15]
    const __m256i pk = _mm256_packs_epi32(a, b);  // [s0 s2 s4 s6 s8 s10 s12 s14 | s1 s3 ... s15]
    const __m128i lo = _mm256_castsi256_si128(pk), hi = _mm256_extracti128_si256(pk, 1);
    _mm_storeu_si128((__m128i*)y->bsums, _mm_unpacklo_epi16(lo, hi));
    _mm_storeu_si128((__m128i*)(y->bsums + 8), _mm_unpackhi_epi16(lo, hi));
    y->d = 1 / iscale;
}

void quantize_q8_K(const float* x, void* vy, int64_t n) {
    block_q8_K* y = (block_q8_K*)vy;
    const int64_t nb = n / QK_K;
    // Two passes over groups of blocks: the max searches of different blocks are independent and
    // overlap; the quantization pass then has its scale ready.
    constexpr int kGroup = 16;
    float vmaxes[kGroup];
    for (int64_t g = 0; g < nb; g += kGroup) {
        const int gn = nb - g < kGroup ? (int)(nb - g) : kGroup;
        for (int k = 0; k < gn; ++k) vmaxes[k] = q8_K_signed_max(x + (g + k) * QK_K);
        for (int k = 0; k < gn; ++k) quantize_q8_K_block(x + (g + k) * QK_K, vmaxes[k], &y[g + k]);
    }
}

// ------------------------------------------------------------------------------------------------

template <class T>
constexpr CpuKernels make_kernels() {
    return CpuKernels{DType::Q8_K, quantize_q8_K, to_float<T>, vec_dot<T>, gemm<T>};
}

const CpuKernels k_q2_K = make_kernels<Q2K>();
const CpuKernels k_q3_K = make_kernels<Q3K>();
const CpuKernels k_q4_K = make_kernels<Q4K>();
const CpuKernels k_q5_K = make_kernels<Q5K>();
const CpuKernels k_q6_K = make_kernels<Q6K>();
const CpuKernels k_iq4_xs = make_kernels<IQ4XS>();

}  // namespace

const CpuKernels* KQ_EXPORT(DType t) {
    switch (t) {
        case DType::Q2_K: return &k_q2_K;
        case DType::Q3_K: return &k_q3_K;
        case DType::Q4_K: return &k_q4_K;
        case DType::Q5_K: return &k_q5_K;
        case DType::Q6_K: return &k_q6_K;
        case DType::IQ4_XS: return &k_iq4_xs;
        default: return nullptr;
    }
}

}  // namespace yiti::cpu::kq
