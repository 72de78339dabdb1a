// SIMD kernels of the legacy quant family, written once and compiled three times:
//   legacy_avx2.cpp        256-bit vectors, one block per vector, maddubs (u8 x s8 -> s16 pairs) + madd
//   legacy_avx512.cpp      512-bit vectors, two blocks per vector, maddubs + madd
//   legacy_avx512vnni.cpp  512-bit vectors, two blocks per vector, vpdpbusd (u8 x s8 -> s32 quads)
// Include it ONLY from those files. Everything here has internal linkage (anonymous namespace), so
// the differently compiled copies can never be merged by the linker.
//
// Integer dot product of one block (weights w_j, activation codes y_j in [-127, 127]):
//  * offset types, value = u - K with an unsigned code u (Q4_0: nibble, K = 8; Q5_0: 5-bit code,
//    K = 16; Q8_0: u = w ^ 0x80, K = 128; IQ4_NL: u = kvalues_iq4nl[nibble] + 128, K = 128):
//      VNNI:  sum (u_j - K) y_j = dpbusd(corr, u, y) with corr = -K * sum y per lane, computed once
//             per activation block and shared by all rows of a tile;
//      else:  the signed value v and the sign trick maddubs(|v|, sign(v) * y): |v| <= 128 and
//             |y| <= 127 keep each s16 pair sum <= 2 * 128 * 127 < 32767, so nothing saturates.
//  * min types (Q4_1, Q5_1): unsigned codes q in [0, 31] times y directly, plus the block term m * s.
// Float part, per block: acc += float(isum) * (d_w * d_y); the product of two halves is exact in
// float, so each block contributes the exact reference term up to one rounding. The scale products
// are prepared 16 blocks at a time (see prep()); the min formats' m * s terms are summed there too.
// Each (row, column) of a tile has its own float vector accumulator, reduced once at the end.
//
// Tiles: up to kTileRows weight rows x kTileCols activation columns, so each weight block is
// expanded once per kTileCols columns and each activation block loaded once per kTileRows rows.
// With one column (decode) kDecodeRows rows share each activation block.
#pragma once

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on their own _mm512_undefined_*() helpers
// (GCC bug 105593, fixed in 13); the warning says nothing about this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/fp16.h"
#include "cpu/kernels.h"
#include "quant/blocks.h"

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "legacy_simd.h must be compiled with AVX2, FMA and F16C"
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#define YL_512 1
#else
#define YL_512 0
#endif
#if YL_512 && defined(__AVX512VNNI__)
#define YL_VNNI 1
#else
#define YL_VNNI 0
#endif

#define YL_INLINE inline __attribute__((always_inline))

namespace yiti::cpu {
namespace {
namespace lsimd {

constexpr int QK = 32;

// ------------------------------------------------------------------ scalar helpers

YL_INLINE float ldh(const uint8_t* p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
YL_INLINE uint32_t ld32(const uint8_t* p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
YL_INLINE __m128i ld128(const uint8_t* p) { return _mm_loadu_si128((const __m128i*)p); }
YL_INLINE __m256i ld256(const uint8_t* p) { return _mm256_loadu_si256((const __m256i*)p); }

// 16 bytes of nibbles -> 32 bytes in element order: low nibbles (elements 0..15), then high (16..31).
YL_INLINE __m256i nib32(const uint8_t* p) {
    const __m128i q = ld128(p);
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

// Byte j = 0x10 where bit j of the little-endian uint32 at p is set, else 0.
YL_INLINE __m256i hbit32(const uint8_t* p) {
    const uint32_t h = ld32(p);
#if YL_512
    return _mm256_maskz_mov_epi8((__mmask32)h, _mm256_set1_epi8(0x10));
#else
    // Spread byte k of h over bytes 8k..8k+7, then test bit (j % 8) of each.
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)h),
        _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
#endif
}

// ------------------------------------------------------------------ vector layer

#if YL_512
using VI = __m512i;
using VF = __m512;
constexpr int kBPV = 2;  // blocks per vector
constexpr int kTileRows = 4, kTileCols = 4, kDecodeRows = 4;

YL_INLINE VF fzero() { return _mm512_setzero_ps(); }
YL_INLINE VI izero() { return _mm512_setzero_si512(); }
YL_INLINE VI set8(int v) { return _mm512_set1_epi8((char)v); }
YL_INLINE VI sub8(VI a, VI b) { return _mm512_sub_epi8(a, b); }
YL_INLINE VI xor_(VI a, VI b) { return _mm512_xor_si512(a, b); }
YL_INLINE VI lut16(const int8_t* tbl, VI idx) {
    return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)tbl)), idx);
}
YL_INLINE VF cvt(VI v) { return _mm512_cvtepi32_ps(v); }
YL_INLINE VF fma_(VF a, VF b, VF c) { return _mm512_fmadd_ps(a, b, c); }
YL_INLINE float hsum(VF v) { return _mm512_reduce_add_ps(v); }
YL_INLINE VI join(__m256i a, __m256i b) { return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1); }
template <int CNT>
YL_INLINE VI load_y(const uint8_t* p, int stride) {
    if constexpr (CNT == 2) return join(ld256(p), ld256(p + stride));
    else return _mm512_zextsi256_si512(ld256(p));
}
// Two blocks of nibbles -> [a low, a high, b low, b high] nibbles, i.e. element order of both.
YL_INLINE VI nib64(const uint8_t* a, const uint8_t* b) {
    VI v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(ld128(a))),
                              _mm256_broadcastsi128_si256(ld128(b)), 1);
    v = _mm512_srlv_epi64(v, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
}
// Adds 16 to the bytes whose bit is set in the two Q5 qh words.
YL_INLINE VI add_hbits64(VI v, const uint8_t* qha, const uint8_t* qhb) {
    const __mmask64 k = (__mmask64)ld32(qha) | ((__mmask64)ld32(qhb) << 32);
    return _mm512_mask_add_epi8(v, k, v, _mm512_set1_epi8(0x10));
}
#else
using VI = __m256i;
using VF = __m256;
constexpr int kBPV = 1;
constexpr int kTileRows = 2, kTileCols = 4, kDecodeRows = 4;

YL_INLINE VF fzero() { return _mm256_setzero_ps(); }
YL_INLINE VI izero() { return _mm256_setzero_si256(); }
YL_INLINE VI set8(int v) { return _mm256_set1_epi8((char)v); }
YL_INLINE VI sub8(VI a, VI b) { return _mm256_sub_epi8(a, b); }
YL_INLINE VI xor_(VI a, VI b) { return _mm256_xor_si256(a, b); }
YL_INLINE VI lut16(const int8_t* tbl, VI idx) {
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)tbl)), idx);
}
YL_INLINE VF cvt(VI v) { return _mm256_cvtepi32_ps(v); }
YL_INLINE VF fma_(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }
YL_INLINE float hsum(VF v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
template <int CNT>
YL_INLINE VI load_y(const uint8_t* p, int) {
    return ld256(p);
}
#endif

// ------------------------------------------------------------------ weight formats
//
// codes(b): one block's 32 codes in element order (__m256i): nibbles / 5-bit codes / int8 weights.
// codes2(a, b) (512-bit only): two blocks' codes.
// to_u(c): the unsigned operand for vpdpbusd (value = to_u - kOff). to_s(c): the signed value
// (offset types) used by the sign trick and by dequantization. Min types use the codes as they are.

template <DType A>
struct Act {
    static constexpr int kBytes = A == DType::Q8_0 ? (int)sizeof(block_q8_0) : (int)sizeof(block_q8_1);
    static constexpr int kQs = A == DType::Q8_0 ? 2 : 4;  // offset of qs
    static constexpr int kS = 2;                          // offset of s (Q8_1)
};

struct PQ4_0 {
    static constexpr DType kAct = DType::Q8_0;
    static constexpr int kBytes = sizeof(block_q4_0), kQs = 2, kM = 0, kOff = 8;
    static constexpr bool kMin = false;
    static YL_INLINE __m256i codes(const uint8_t* b) { return nib32(b + kQs); }
#if YL_512
    static YL_INLINE VI codes2(const uint8_t* a, const uint8_t* b) { return nib64(a + kQs, b + kQs); }
#endif
    static YL_INLINE VI to_u(VI c) { return c; }
    static YL_INLINE VI to_s(VI c) { return sub8(c, set8(8)); }
};

struct PQ4_1 {
    static constexpr DType kAct = DType::Q8_1;
    static constexpr int kBytes = sizeof(block_q4_1), kQs = 4, kM = 2, kOff = 0;
    static constexpr bool kMin = true;
    static YL_INLINE __m256i codes(const uint8_t* b) { return nib32(b + kQs); }
#if YL_512
    static YL_INLINE VI codes2(const uint8_t* a, const uint8_t* b) { return nib64(a + kQs, b + kQs); }
#endif
    static YL_INLINE VI to_u(VI c) { return c; }
    static YL_INLINE VI to_s(VI c) { return c; }
};

struct PQ5_0 {
    static constexpr DType kAct = DType::Q8_0;
    static constexpr int kBytes = sizeof(block_q5_0), kQh = 2, kQs = 6, kM = 0, kOff = 16;
    static constexpr bool kMin = false;
    static YL_INLINE __m256i codes(const uint8_t* b) { return _mm256_or_si256(nib32(b + kQs), hbit32(b + kQh)); }
#if YL_512
    static YL_INLINE VI codes2(const uint8_t* a, const uint8_t* b) {
        return add_hbits64(nib64(a + kQs, b + kQs), a + kQh, b + kQh);
    }
#endif
    static YL_INLINE VI to_u(VI c) { return c; }
    static YL_INLINE VI to_s(VI c) { return sub8(c, set8(16)); }
};

struct PQ5_1 {
    static constexpr DType kAct = DType::Q8_1;
    static constexpr int kBytes = sizeof(block_q5_1), kM = 2, kQh = 4, kQs = 8, kOff = 0;
    static constexpr bool kMin = true;
    static YL_INLINE __m256i codes(const uint8_t* b) { return _mm256_or_si256(nib32(b + kQs), hbit32(b + kQh)); }
#if YL_512
    static YL_INLINE VI codes2(const uint8_t* a, const uint8_t* b) {
        return add_hbits64(nib64(a + kQs, b + kQs), a + kQh, b + kQh);
    }
#endif
    static YL_INLINE VI to_u(VI c) { return c; }
    static YL_INLINE VI to_s(VI c) { return c; }
};

struct PQ8_0 {
    static constexpr DType kAct = DType::Q8_0;
    static constexpr int kBytes = sizeof(block_q8_0), kQs = 2, kM = 0, kOff = 128;
    static constexpr bool kMin = false;
    static YL_INLINE __m256i codes(const uint8_t* b) { return ld256(b + kQs); }
#if YL_512
    static YL_INLINE VI codes2(const uint8_t* a, const uint8_t* b) { return join(ld256(a + kQs), ld256(b + kQs)); }
#endif
    static YL_INLINE VI to_u(VI c) { return xor_(c, set8(0x80)); }
    static YL_INLINE VI to_s(VI c) { return c; }
};

// kvalues_iq4nl + 128, as unsigned bytes (stored in int8_t for the table loader).
alignas(16) inline constexpr int8_t kIq4nlU[16] = {
    (int8_t)1,   (int8_t)24,  (int8_t)45,  (int8_t)63,  (int8_t)79,  (int8_t)93,  (int8_t)106, (int8_t)118,
    (int8_t)129, (int8_t)141, (int8_t)153, (int8_t)166, (int8_t)181, (int8_t)197, (int8_t)217, (int8_t)241};

struct PIQ4_NL {
    static constexpr DType kAct = DType::Q8_0;
    static constexpr int kBytes = sizeof(block_iq4_nl), kQs = 2, kM = 0, kOff = 128;
    static constexpr bool kMin = false;
    static YL_INLINE __m256i codes(const uint8_t* b) { return nib32(b + kQs); }
#if YL_512
    static YL_INLINE VI codes2(const uint8_t* a, const uint8_t* b) { return nib64(a + kQs, b + kQs); }
#endif
    static YL_INLINE VI to_u(VI c) { return lut16(kIq4nlU, c); }
    static YL_INLINE VI to_s(VI c) { return lut16(kvalues_iq4nl, c); }
};

// CNT (1 or kBPV) blocks of codes starting at b; with 512-bit vectors and CNT = 1 the upper half is 0.
template <class P, int CNT>
YL_INLINE VI load_w(const uint8_t* b) {
#if YL_512
    if constexpr (CNT == 2) return P::codes2(b, b + P::kBytes);
    else return _mm512_zextsi256_si512(P::codes(b));
#else
    return P::codes(b);
#endif
}

// ------------------------------------------------------------------ dot products
//
// Scales. The halves d (and m, s) sit at a fixed stride in the rows, and converting and broadcasting
// them block by block costs more than the block's integer dot product. So a tile works through
// chunks of kChunk blocks: it copies the chunk's halves of every row and column into small arrays
// (plain loads and stores), converts them 16 at a time and stores dd[r][c][j] = d_w * d_y (exact in
// float). The min formats' m * s terms are summed right there, 16 blocks per FMA, into msum. The
// block loop then just loads dd (one load and one permute per pair of blocks).

constexpr int kChunk = 16;

YL_INLINE uint16_t ld16(const uint8_t* p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

// 16 halves (at p, p + stride, ...) into h; with kFull false only cnt of them, the rest 0.
template <bool kFull>
YL_INLINE void gather16(const uint8_t* p, int stride, int cnt, uint16_t* h) {
    for (int j = 0; j < kChunk; ++j) h[j] = (kFull || j < cnt) ? ld16(p + j * stride) : 0;
}

YL_INLINE void cvt16(const uint16_t* h, float* f) {
#if YL_512
    _mm512_store_ps(f, _mm512_cvtph_ps(_mm256_load_si256((const __m256i*)h)));
#else
    _mm256_store_ps(f, _mm256_cvtph_ps(_mm_load_si128((const __m128i*)h)));
    _mm256_store_ps(f + 8, _mm256_cvtph_ps(_mm_load_si128((const __m128i*)(h + 8))));
#endif
}

YL_INLINE void mul16(const float* a, const float* b, float* o) {
#if YL_512
    _mm512_store_ps(o, _mm512_mul_ps(_mm512_load_ps(a), _mm512_load_ps(b)));
#else
    for (int k = 0; k < 16; k += 8) _mm256_store_ps(o + k, _mm256_mul_ps(_mm256_load_ps(a + k), _mm256_load_ps(b + k)));
#endif
}

YL_INLINE void fma16(const float* a, const float* b, float* acc) {
#if YL_512
    _mm512_store_ps(acc, _mm512_fmadd_ps(_mm512_load_ps(a), _mm512_load_ps(b), _mm512_load_ps(acc)));
#else
    for (int k = 0; k < 16; k += 8)
        _mm256_store_ps(acc + k, _mm256_fmadd_ps(_mm256_load_ps(a + k), _mm256_load_ps(b + k), _mm256_load_ps(acc + k)));
#endif
}

YL_INLINE float sum16(const float* a) {
#if YL_512
    return _mm512_reduce_add_ps(_mm512_load_ps(a));
#else
    return hsum(_mm256_add_ps(_mm256_load_ps(a), _mm256_load_ps(a + 8)));
#endif
}

// The scale vector of the blocks j (and j + 1) of a chunk: lanes 0..7 dd[j], lanes 8..15 dd[j + 1].
// A lone last block reads the chunk's zero padding as dd[j + 1].
YL_INLINE VF dd_vec(const float* p) {
#if YL_512
    const __m512 two = _mm512_castps128_ps512(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i*)p)));
    return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), two);
#else
    return _mm256_broadcast_ss(p);
#endif
}

template <class P, int RM, int RN, bool kFull>
YL_INLINE void prep(const uint8_t* const (&wr)[RM], const uint8_t* const (&xc)[RN], int64_t ib0, int cnt,
                    float (&dd)[RM][RN][kChunk], float (&msum)[RM][RN][kChunk]) {
    using Y = Act<P::kAct>;
    alignas(64) uint16_t hw[RM][kChunk], hy[RN][kChunk];
    alignas(64) float fw[RM][kChunk], fy[RN][kChunk];
    for (int r = 0; r < RM; ++r) {
        gather16<kFull>(wr[r] + ib0 * P::kBytes, P::kBytes, cnt, hw[r]);
        cvt16(hw[r], fw[r]);
    }
    for (int c = 0; c < RN; ++c) {
        gather16<kFull>(xc[c] + ib0 * Y::kBytes, Y::kBytes, cnt, hy[c]);
        cvt16(hy[c], fy[c]);
    }
    for (int r = 0; r < RM; ++r)
        for (int c = 0; c < RN; ++c) mul16(fw[r], fy[c], dd[r][c]);
    if constexpr (P::kMin) {
        for (int r = 0; r < RM; ++r) {
            gather16<kFull>(wr[r] + ib0 * P::kBytes + P::kM, P::kBytes, cnt, hw[r]);
            cvt16(hw[r], fw[r]);
        }
        for (int c = 0; c < RN; ++c) {
            gather16<kFull>(xc[c] + ib0 * Y::kBytes + Y::kS, Y::kBytes, cnt, hy[c]);
            cvt16(hy[c], fy[c]);
        }
        for (int r = 0; r < RM; ++r)
            for (int c = 0; c < RN; ++c) fma16(fw[r], fy[c], msum[r][c]);
    }
}

// CNT blocks (1 or kBPV) starting at block ib (= block j of the chunk).
template <class P, int RM, int RN, int CNT>
YL_INLINE void step(const uint8_t* const (&wr)[RM], const uint8_t* const (&xc)[RN], int64_t ib,
                    const float (&dd)[RM][RN][kChunk], int j, VF (&acc)[RM][RN]) {
    using Y = Act<P::kAct>;
    VI a[RM];
#if YL_512 && !YL_VNNI
    [[maybe_unused]] __mmask64 neg[RM];
#elif !YL_512
    [[maybe_unused]] VI sgn[RM];
#endif
    for (int r = 0; r < RM; ++r) {
        const VI c = load_w<P, CNT>(wr[r] + ib * P::kBytes);
#if YL_VNNI
        a[r] = P::to_u(c);
#else
        if constexpr (P::kMin) {
            a[r] = c;
        } else {
            const VI s = P::to_s(c);
#if YL_512
            a[r] = _mm512_abs_epi8(s);
            neg[r] = _mm512_movepi8_mask(s);
#else
            a[r] = _mm256_abs_epi8(s);
            sgn[r] = s;
#endif
        }
#endif
    }
    for (int c = 0; c < RN; ++c) {
        const VI yv = load_y<CNT>(xc[c] + ib * Y::kBytes + Y::kQs, Y::kBytes);
#if YL_VNNI
        VI corr = izero();
        if constexpr (P::kOff != 0) corr = _mm512_sub_epi32(izero(), _mm512_dpbusd_epi32(izero(), set8(P::kOff), yv));
#endif
        for (int r = 0; r < RM; ++r) {
            VI isum;
#if YL_VNNI
            isum = _mm512_dpbusd_epi32(corr, a[r], yv);
#elif YL_512
            if constexpr (P::kMin) {
                isum = _mm512_madd_epi16(_mm512_maddubs_epi16(a[r], yv), _mm512_set1_epi16(1));
            } else {
                const VI sy8 = _mm512_mask_sub_epi8(yv, neg[r], _mm512_setzero_si512(), yv);
                isum = _mm512_madd_epi16(_mm512_maddubs_epi16(a[r], sy8), _mm512_set1_epi16(1));
            }
#else
            if constexpr (P::kMin) {
                isum = _mm256_madd_epi16(_mm256_maddubs_epi16(a[r], yv), _mm256_set1_epi16(1));
            } else {
                const VI sy8 = _mm256_sign_epi8(yv, sgn[r]);
                isum = _mm256_madd_epi16(_mm256_maddubs_epi16(a[r], sy8), _mm256_set1_epi16(1));
            }
#endif
            acc[r][c] = fma_(cvt(isum), dd_vec(&dd[r][c][j]), acc[r][c]);
        }
    }
}

// s[c * lds + r] = dot(row r, column c) for r < RM, c < RN over nb blocks.
template <class P, int RM, int RN>
void tile(int64_t nb, const uint8_t* w, size_t ldw, const uint8_t* x, size_t ldx, float* s, size_t lds) {
    const uint8_t* wr[RM];
    const uint8_t* xc[RN];
    for (int r = 0; r < RM; ++r) wr[r] = w + r * ldw;
    for (int c = 0; c < RN; ++c) xc[c] = x + c * ldx;
    VF acc[RM][RN];
    for (int r = 0; r < RM; ++r)
        for (int c = 0; c < RN; ++c) acc[r][c] = fzero();
    alignas(64) float dd[RM][RN][kChunk];
    alignas(64) float msum[RM][RN][kChunk];
    if constexpr (P::kMin) memset(msum, 0, sizeof msum);
    for (int64_t ib0 = 0; ib0 < nb; ib0 += kChunk) {
        const int cnt = (int)std::min<int64_t>(kChunk, nb - ib0);
        if (cnt == kChunk) prep<P, RM, RN, true>(wr, xc, ib0, cnt, dd, msum);
        else prep<P, RM, RN, false>(wr, xc, ib0, cnt, dd, msum);
        int j = 0;
        for (; j + kBPV <= cnt; j += kBPV) step<P, RM, RN, kBPV>(wr, xc, ib0 + j, dd, j, acc);
        if constexpr (kBPV > 1) {
            if (j < cnt) step<P, RM, RN, 1>(wr, xc, ib0 + j, dd, j, acc);
        }
    }
    for (int r = 0; r < RM; ++r)
        for (int c = 0; c < RN; ++c) {
            float v = hsum(acc[r][c]);
            if constexpr (P::kMin) v += sum16(msum[r][c]);
            s[c * lds + r] = v;
        }
}

using TileFn = void (*)(int64_t, const uint8_t*, size_t, const uint8_t*, size_t, float*, size_t);

template <class P>
struct Tiles {
    static constexpr TileFn fn[4][4] = {
        {tile<P, 1, 1>, tile<P, 1, 2>, tile<P, 1, 3>, tile<P, 1, 4>},
        {tile<P, 2, 1>, tile<P, 2, 2>, tile<P, 2, 3>, tile<P, 2, 4>},
        {tile<P, 3, 1>, tile<P, 3, 2>, tile<P, 3, 3>, tile<P, 3, 4>},
        {tile<P, 4, 1>, tile<P, 4, 2>, tile<P, 4, 3>, tile<P, 4, 4>},
    };
};
static_assert(kTileRows <= 4 && kTileCols <= 4 && kDecodeRows <= 4);

template <class P>
void vec_dot(int64_t n, float* s, const void* w, const void* x) {
    tile<P, 1, 1>(n / QK, (const uint8_t*)w, 0, (const uint8_t*)x, 0, s, 0);
}

template <class P>
void gemm(int64_t n, float* s, size_t lds, const void* w, size_t ldw, int nr, const void* x, size_t ldx, int nc) {
    const int64_t nb = n / QK;
    const uint8_t* wb = (const uint8_t*)w;
    const uint8_t* xb = (const uint8_t*)x;
    const int rmax = nc == 1 ? kDecodeRows : kTileRows;
    for (int r0 = 0; r0 < nr; r0 += rmax) {
        const int rm = std::min(rmax, nr - r0);
        for (int c0 = 0; c0 < nc; c0 += kTileCols) {
            const int rn = std::min(kTileCols, nc - c0);
            Tiles<P>::fn[rm - 1][rn - 1](nb, wb + r0 * ldw, ldw, xb + c0 * ldx, ldx, s + c0 * lds + r0, lds);
        }
    }
}

// ------------------------------------------------------------------ dequantization

template <class P, int CNT>
YL_INLINE void deq_step(const uint8_t* b, float* y) {
    VI v = load_w<P, CNT>(b);
    if constexpr (!P::kMin) v = P::to_s(v);
#if YL_512
    for (int k = 0; k < 2 * CNT; ++k) {
        const uint8_t* blk = b + (k / 2) * P::kBytes;
        const __m128i ck = k == 0   ? _mm512_castsi512_si128(v)
                           : k == 1 ? _mm512_extracti32x4_epi32(v, 1)
                           : k == 2 ? _mm512_extracti32x4_epi32(v, 2)
                                    : _mm512_extracti32x4_epi32(v, 3);
        const __m512i wide = P::kMin ? _mm512_cvtepu8_epi32(ck) : _mm512_cvtepi8_epi32(ck);
        __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(wide), _mm512_set1_ps(ldh(blk)));
        if constexpr (P::kMin) f = _mm512_add_ps(f, _mm512_set1_ps(ldh(blk + P::kM)));
        _mm512_storeu_ps(y + 16 * k, f);
    }
#else
    const __m256 d = _mm256_set1_ps(ldh(b));
    [[maybe_unused]] __m256 m;
    if constexpr (P::kMin) m = _mm256_set1_ps(ldh(b + P::kM));
    const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
    for (int k = 0; k < 4; ++k) {
        const __m128i h = k < 2 ? lo : hi;
        const __m128i ck = (k & 1) ? _mm_srli_si128(h, 8) : h;
        const __m256i wide = P::kMin ? _mm256_cvtepu8_epi32(ck) : _mm256_cvtepi8_epi32(ck);
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(wide), d);
        if constexpr (P::kMin) f = _mm256_add_ps(f, m);
        _mm256_storeu_ps(y + 8 * k, f);
    }
#endif
}

template <class P>
void to_float(const void* src, float* y, int64_t n) {
    const uint8_t* b = (const uint8_t*)src;
    const int64_t nb = n / QK;
    int64_t i = 0;
    for (; i + kBPV <= nb; i += kBPV, b += kBPV * P::kBytes, y += kBPV * QK) deq_step<P, kBPV>(b, y);
    if constexpr (kBPV > 1) {
        if (i < nb) deq_step<P, 1>(b, y);
    }
}

// ------------------------------------------------------------------ activation quantization
//
// Bit-identical to the reference (quant/ref_legacy.cpp): the same amax, the same float d = amax / 127
// and id = 1 / d (IEEE division), the same products x * id, and roundf's round-half-away-from-zero
// rebuilt as trunc(v) + (|v - trunc(v)| >= 0.5 ? sign(v) : 0) (v - trunc(v) is exact).

template <bool kQ8_1>
void quantize_q8(const float* x, void* dst, int64_t n) {
    constexpr int kBytes = kQ8_1 ? (int)sizeof(block_q8_1) : (int)sizeof(block_q8_0);
    constexpr int kQs = kQ8_1 ? 4 : 2;
    uint8_t* out = (uint8_t*)dst;
    for (int64_t i = 0; i < n / QK; ++i, x += QK, out += kBytes) {
#if YL_512
        const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
#else
        const __m256 sign = _mm256_set1_ps(-0.0f);
        __m256 v[4];
        for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(x + 8 * k);
        __m256 am = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                  _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(am), _mm256_extractf128_ps(am, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
#endif
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = fp32_to_fp16(d);
        memcpy(out, &dh, 2);
#if YL_512
        const __m512 vid = _mm512_set1_ps(id);
        const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
        __m512i q[2];
        for (int k = 0; k < 2; ++k) {
            const __m512 v = _mm512_mul_ps(k == 0 ? v0 : v1, vid);
            const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), half, _CMP_GE_OQ);
            const __m512 sgn1 = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)), one);
            q[k] = _mm512_cvttps_epi32(_mm512_mask_add_ps(t, up, t, sgn1));
            _mm_storeu_si128((__m128i*)(out + kQs + 16 * k), _mm512_cvtepi32_epi8(q[k]));
        }
        if constexpr (kQ8_1) {
            const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
            const uint16_t sh = fp32_to_fp16((float)sum * d);
            memcpy(out + 2, &sh, 2);
        }
#else
        const __m256 vid = _mm256_set1_ps(id);
        const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
        __m256i q[4];
        for (int k = 0; k < 4; ++k) {
            const __m256 vk = _mm256_mul_ps(v[k], vid);
            const __m256 t = _mm256_round_ps(vk, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m256 up = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(vk, t)), half, _CMP_GE_OQ);
            const __m256 sgn1 = _mm256_or_ps(_mm256_and_ps(vk, sign), one);
            q[k] = _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, sgn1)));
        }
        // packs interleave 128-bit lanes: the 32-bit groups come out as q0a q1a q2a q3a q0b q1b q2b q3b.
        const __m256i p01 = _mm256_packs_epi32(q[0], q[1]), p23 = _mm256_packs_epi32(q[2], q[3]);
        const __m256i p = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23),
                                                      _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i*)(out + kQs), p);
        if constexpr (kQ8_1) {
            __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
            const int sum = _mm_cvtsi128_si32(s4);
            const uint16_t sh = fp32_to_fp16((float)sum * d);
            memcpy(out + 2, &sh, 2);
        }
#endif
    }
}

// ------------------------------------------------------------------ tables

template <class P>
constexpr CpuKernels make() {
    return {P::kAct, P::kAct == DType::Q8_0 ? quantize_q8<false> : quantize_q8<true>, to_float<P>, vec_dot<P>,
            gemm<P>};
}

const CpuKernels k_q4_0 = make<PQ4_0>();
const CpuKernels k_q4_1 = make<PQ4_1>();
const CpuKernels k_q5_0 = make<PQ5_0>();
const CpuKernels k_q5_1 = make<PQ5_1>();
const CpuKernels k_q8_0 = make<PQ8_0>();
const CpuKernels k_iq4_nl = make<PIQ4_NL>();

const CpuKernels* table(DType t) {
    switch (t) {
        case DType::Q4_0: return &k_q4_0;
        case DType::Q4_1: return &k_q4_1;
        case DType::Q5_0: return &k_q5_0;
        case DType::Q5_1: return &k_q5_1;
        case DType::Q8_0: return &k_q8_0;
        case DType::IQ4_NL: return &k_iq4_nl;
        default: return nullptr;
    }
}

}  // namespace lsimd
}  // namespace
}  // namespace yiti::cpu
