// i-quant kernels (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M x Q8_K) written once with
// 256-bit integer intrinsics and compiled per instruction set. Include only from an ISA source file,
// after defining
//   IQ_AVX512    1 to apply signs with AVX512-BW/VL mask registers, else 0
//   IQ_VNNI      1 to use vpdpwssd (AVX512-VNNI + VL on 256-bit registers), else 0
//   IQ_MAXNC     activation columns per gemm tile (4 for 16 vector registers, 8 for 32)
//   IQ_EXPORT    the name of the table function (declared in iquants_impl.h)
// Everything here has internal linkage so the copies built with different flags never mix.
//
// Every weight format is read through the model of the reference (src/quant/ref_iquants.cpp): per
// 32-element chunk, 32 unsigned magnitudes |q| (grid bytes looked up by the chunk's indices), the
// signs of q (a 32-bit mask, or for IQ1_S/IQ1_M the signed values themselves), and int16 scales for
// the two 16-element halves. For a Q8_K block y:
//   isum = sum_chunks madd(maddubs(|q|, sign(q) * y.qs), scales)     (exact int32 per lane)
//   block = (D * y.d) * isum                                          (per lane, summed at the end)
// IQ1_S/IQ1_M's q = 8 g + t (g in -1/0/1, t = +-1) come from one pshufb of g + 1 + 4 (t < 0).
// The integer part equals the reference exactly; only the float accumulation order differs.
#pragma once
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "cpu/iquants_impl.h"
#include "cpu/kernels.h"
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/iq_grids.h"

#if !defined(IQ_AVX512) || !defined(IQ_VNNI) || !defined(IQ_MAXNC)
#error "define IQ_AVX512, IQ_VNNI and IQ_MAXNC before including iquants_simd.h"
#endif

namespace yiti::cpu::iq {
namespace {

// ------------------------------------------------------------------------------------------------
// Helpers

inline float f16(uint16_t h) { return _cvtsh_ss(h); }
inline __m256i load256(const void* p) { return _mm256_loadu_si256((const __m256i*)p); }
inline uint32_t u32(const void* p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// acc + madd(a, b): int16 pairs multiplied and summed into int32 lanes.
inline __m256i dot_acc(__m256i acc, __m256i a, __m256i b) {
#if IQ_VNNI
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

// Four 7-bit sign groups (bits 7l .. 7l+6 of s) -> a 32-bit mask, byte l = the 8 signs of group l
// with the parity bit as the eighth sign (iq_signs8 for four groups at once).
// with_parity: the same from four bytes of 7 sign bits each (bit 7 clear).
inline uint32_t with_parity(uint32_t v) {
    uint32_t t = v ^ (v >> 4);  // bit 0 of each byte: parity of that byte (bits 4..7 of t: garbage)
    t ^= t >> 2;
    t ^= t >> 1;
    return v | ((t & 0x01010101u) << 7);
}
inline uint32_t signs_from7(uint32_t s) {
    return with_parity((s & 0x7Fu) | ((s << 1) & 0x7F00u) | ((s << 2) & 0x7F0000u) | ((s << 3) & 0x7F000000u));
}

// Signs of 32 elements, applied to activation bytes (which are never -128).
struct Signs {
#if IQ_AVX512
    __mmask32 k;
    static inline Signs from_mask(uint32_t m) { return {(__mmask32)m}; }
    static inline Signs from_values(__m256i v) { return {_mm256_movepi8_mask(v)}; }
    inline __m256i apply(__m256i x) const { return _mm256_mask_sub_epi8(x, k, _mm256_setzero_si256(), x); }
#else
    __m256i v;  // nonzero bytes; negative = negate
    static inline Signs from_mask(uint32_t m) {
        const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                             3, 3, 3, 3, 3, 3, 3);
        const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ull);
        const __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)m), sel), bits);
        return {_mm256_or_si256(_mm256_cmpeq_epi8(b, bits), _mm256_set1_epi8(1))};
    }
    static inline Signs from_values(__m256i v) { return {v}; }
    inline __m256i apply(__m256i x) const { return _mm256_sign_epi8(x, v); }
#endif
};

struct Chunk {
    __m256i q;   // unsigned magnitudes
    Signs s;     // their signs
    __m256i sc;  // int16 scales of the maddubs lanes (lanes 0-7: elements 0-15, 8-15: elements 16-31)
};

// Per-16 scales: sc16 holds the 16 scales of a block as int16; lo / hi broadcast scales 0..7 / 8..15 to
// both 128-bit lanes; chunk j takes scale 2j in its low half and 2j+1 in its high half.
struct Scales16 {
    __m256i lo, hi;
    explicit Scales16(__m256i sc16) {
        lo = _mm256_permute2x128_si256(sc16, sc16, 0x00);
        hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
    }
    inline __m256i chunk(int j) const {
        alignas(32) static const uint8_t ctrl[4][32] = {
#define IQ_R(k) 2 * (k), 2 * (k) + 1
#define IQ_ROW(j)                                                                                            \
    {IQ_R(2 * (j)),     IQ_R(2 * (j)),     IQ_R(2 * (j)),     IQ_R(2 * (j)),     IQ_R(2 * (j)),               \
     IQ_R(2 * (j)),     IQ_R(2 * (j)),     IQ_R(2 * (j)),     IQ_R(2 * (j) + 1), IQ_R(2 * (j) + 1),           \
     IQ_R(2 * (j) + 1), IQ_R(2 * (j) + 1), IQ_R(2 * (j) + 1), IQ_R(2 * (j) + 1), IQ_R(2 * (j) + 1),           \
     IQ_R(2 * (j) + 1)}
            IQ_ROW(0), IQ_ROW(1), IQ_ROW(2), IQ_ROW(3),
#undef IQ_ROW
#undef IQ_R
        };
        return _mm256_shuffle_epi8(j < 4 ? lo : hi, load256(ctrl[j & 3]));
    }
};

// 8 scale bytes, low nibble = first 16 elements of a chunk -> 16 int16 scales 2 l + 1.
inline __m256i nibble_scales(const uint8_t* s8) {
    uint64_t v;
    memcpy(&v, s8, 8);
    const __m128i b = _mm_cvtsi64_si128((long long)v);
    const __m128i m = _mm_set1_epi8(0x0F);
    const __m128i n = _mm_unpacklo_epi8(_mm_and_si128(b, m), _mm_and_si128(_mm_srli_epi16(b, 4), m));
    const __m256i w = _mm256_cvtepu8_epi16(n);
    return _mm256_add_epi16(_mm256_add_epi16(w, w), _mm256_set1_epi16(1));
}

inline __m256i grid4x64(const uint64_t* g, uint32_t i0, uint32_t i1, uint32_t i2, uint32_t i3) {
    return _mm256_set_epi64x((long long)g[i3], (long long)g[i2], (long long)g[i1], (long long)g[i0]);
}

// ------------------------------------------------------------------------------------------------
// Per-format decoders: State(b) per block (D and scales), chunk(b, st, j) for elements 32j .. 32j+31.

struct IQ2XXS {
    using block = block_iq2_xxs;
    struct State {
        float D;
        explicit State(const block& b) : D(f16(b.d) * 0.125f) {}
    };
    static inline Chunk chunk(const block& b, const State&, int j) {
        const uint32_t a = u32(&b.qs[4 * j]), s = u32(&b.qs[4 * j + 2]);
        return {grid4x64(k_iq2xxs_grid, a & 255, (a >> 8) & 255, (a >> 16) & 255, a >> 24),
                Signs::from_mask(signs_from7(s)), _mm256_set1_epi16((short)(2 * (s >> 28) + 1))};
    }
};

struct IQ2XS {
    using block = block_iq2_xs;
    struct State {
        float D;
        Scales16 sc;
        explicit State(const block& b) : D(f16(b.d) * 0.125f), sc(nibble_scales(b.scales)) {}
    };
    static inline Chunk chunk(const block& b, const State& st, int j) {
        uint64_t w;
        memcpy(&w, &b.qs[4 * j], 8);
        // The 7 sign bits of group l (bits 16 l + 9 ..) into byte l, plus the parity bit.
        const uint32_t v = (uint32_t)(((w >> 9) & 0x7F) | ((w >> 17) & 0x7F00) | ((w >> 25) & 0x7F0000) |
                                      ((w >> 33) & 0x7F000000));
        return {grid4x64(k_iq2xs_grid, (uint32_t)w & 511, (uint32_t)(w >> 16) & 511, (uint32_t)(w >> 32) & 511,
                         (uint32_t)(w >> 48) & 511),
                Signs::from_mask(with_parity(v)), st.sc.chunk(j)};
    }
};

struct IQ2S {
    using block = block_iq2_s;
    struct State {
        float D;
        Scales16 sc;
        explicit State(const block& b) : D(f16(b.d) * 0.125f), sc(nibble_scales(b.scales)) {}
    };
    static inline Chunk chunk(const block& b, const State& st, int j) {
        const uint32_t a = u32(&b.qs[4 * j]), h = b.qh[j];
        return {grid4x64(k_iq2s_grid, (a & 255) | ((h & 3) << 8), ((a >> 8) & 255) | ((h & 12) << 6),
                         ((a >> 16) & 255) | ((h & 48) << 4), (a >> 24) | ((h & 192) << 2)),
                Signs::from_mask(u32(&b.qs[32 + 4 * j])), st.sc.chunk(j)};
    }
};

struct IQ3XXS {
    using block = block_iq3_xxs;
    struct State {
        float D;
        explicit State(const block& b) : D(f16(b.d) * 0.25f) {}
    };
    static inline Chunk chunk(const block& b, const State&, int j) {
        const uint8_t* q = b.qs + 8 * j;
        const uint32_t s = u32(&b.qs[64 + 4 * j]);
        const uint32_t* g = k_iq3xxs_grid;
        const __m256i v = _mm256_set_epi32((int)g[q[7]], (int)g[q[6]], (int)g[q[5]], (int)g[q[4]], (int)g[q[3]],
                                           (int)g[q[2]], (int)g[q[1]], (int)g[q[0]]);
        return {v, Signs::from_mask(signs_from7(s)), _mm256_set1_epi16((short)(2 * (s >> 28) + 1))};
    }
};

struct IQ3S {
    using block = block_iq3_s;
    struct State {
        float D;
        explicit State(const block& b) : D(f16(b.d)) {}
    };
    static inline Chunk chunk(const block& b, const State&, int j) {
        const uint8_t* q = b.qs + 8 * j;
        const uint32_t h = b.qh[j];
        const uint32_t* g = k_iq3s_grid;
        const __m256i v = _mm256_set_epi32(
            (int)g[q[7] | ((h << 1) & 256)], (int)g[q[6] | ((h << 2) & 256)], (int)g[q[5] | ((h << 3) & 256)],
            (int)g[q[4] | ((h << 4) & 256)], (int)g[q[3] | ((h << 5) & 256)], (int)g[q[2] | ((h << 6) & 256)],
            (int)g[q[1] | ((h << 7) & 256)], (int)g[q[0] | ((h << 8) & 256)]);
        const int ls = 2 * ((b.scales[j / 2] >> (4 * (j % 2))) & 15) + 1;
        return {v, Signs::from_mask(u32(&b.signs[4 * j])), _mm256_set1_epi16((short)ls)};
    }
};

// IQ1: grid bytes g (-1/0/1) plus offs (per byte 1, or 5 where the shift t is negative) index
// this table of q = 8 g + t.
inline __m256i iq1_values(__m256i g, __m256i offs) {
    const __m256i lut = _mm256_setr_epi8(-7, 1, 9, 0, -9, -1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, -7, 1, 9, 0, -9, -1, 7, 0,
                                         0, 0, 0, 0, 0, 0, 0, 0);
    return _mm256_shuffle_epi8(lut, _mm256_add_epi8(g, offs));
}

inline Chunk iq1_chunk(__m256i v, __m256i sc) { return {_mm256_abs_epi8(v), Signs::from_values(v), sc}; }

struct IQ1S {
    using block = block_iq1_s;
    struct State {
        float D;
        explicit State(const block& b) : D(f16(b.d) * 0.125f) {}
    };
    static inline Chunk chunk(const block& b, const State&, int j) {
        const uint32_t a = u32(&b.qs[4 * j]), h = b.qh[j];
        const __m256i g = grid4x64(k_iq1s_grid, (a & 255) | ((h & 7) << 8), ((a >> 8) & 255) | ((h & 0x38) << 5),
                                   ((a >> 16) & 255) | ((h & 0x1C0) << 2), (a >> 24) | ((h & 0xE00) >> 1));
        const __m256i v = iq1_values(g, _mm256_set1_epi8((h & 0x8000) ? 5 : 1));
        return iq1_chunk(v, _mm256_set1_epi16((short)(2 * ((h >> 12) & 7) + 1)));
    }
};

struct IQ1M {
    using block = block_iq1_m;
    struct State {
        float D;
        Scales16 sc;
        static inline __m256i scales(const block& b) {
            uint64_t s;
            memcpy(&s, b.scales, 8);
            alignas(32) int16_t v[16];
            for (int k = 0; k < 16; ++k) v[k] = (int16_t)(2 * ((s >> (16 * (k / 4) + 3 * (k % 4))) & 7) + 1);
            return _mm256_load_si256((const __m256i*)v);
        }
        static inline float d(const block& b) {
            uint16_t sc[4];
            memcpy(sc, b.scales, 8);
            return f16((uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000))) *
                   0.125f;
        }
        explicit State(const block& b) : D(d(b)), sc(scales(b)) {}
    };
    static inline Chunk chunk(const block& b, const State& st, int j) {
        const uint32_t a = u32(&b.qs[4 * j]);
        const uint32_t h = (uint32_t)b.qh[2 * j] | ((uint32_t)b.qh[2 * j + 1] << 8);
        const __m256i g = grid4x64(k_iq1s_grid, (a & 255) | ((h & 7) << 8), ((a >> 8) & 255) | ((h & 0x70) << 4),
                                   ((a >> 16) & 255) | (h & 0x700), (a >> 24) | ((h & 0x7000) >> 4));
        // Shift signs: bits 3, 7, 11, 15 of h, one per 8 elements (64-bit lane l tests bit 4 l + 3).
        const __m256i tbit = _mm256_setr_epi64x(0x0008000800080008ll, 0x0080008000800080ll, 0x0800080008000800ll,
                                                (long long)0x8000800080008000ull);
        const __m256i neg = _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16((short)h), tbit), tbit);
        const __m256i off = _mm256_or_si256(_mm256_and_si256(neg, _mm256_set1_epi8(4)), _mm256_set1_epi8(1));
        return iq1_chunk(iq1_values(g, off), st.sc.chunk(j));
    }
};

// ------------------------------------------------------------------------------------------------
// Dot products: one weight row against NC activation columns, each weight chunk decoded once.

template <class T, int NC>
inline void dot_tile(int64_t nb, const typename T::block* w, const block_q8_K* const* xs, float* out) {
    // With few columns, two partial sums per column break the accumulate dependency chain.
    constexpr int kSplit = NC <= 2 ? 2 : 1;
    __m256 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        const typename T::block& b = w[i];
        const typename T::State st(b);
        __m256i isum[NC], isum2[NC];
        for (int c = 0; c < NC; ++c) isum[c] = isum2[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
            const Chunk ch = T::chunk(b, st, j);
#pragma GCC unroll 8
            for (int c = 0; c < NC; ++c) {
                const __m256i x = load256(xs[c][i].qs + 32 * j);
                const __m256i p = _mm256_maddubs_epi16(ch.q, ch.s.apply(x));
                if (kSplit == 2 && (j & 1)) isum2[c] = dot_acc(isum2[c], p, ch.sc);
                else isum[c] = dot_acc(isum[c], p, ch.sc);
            }
        }
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) {
            const __m256i s = kSplit == 2 ? _mm256_add_epi32(isum[c], isum2[c]) : isum[c];
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(st.D * xs[c][i].d), _mm256_cvtepi32_ps(s), acc[c]);
        }
    }
    for (int c = 0; c < NC; ++c) out[c] = hsum(acc[c]);
}

template <class T>
void vec_dot(int64_t n, float* s, const void* w, const void* x) {
    const block_q8_K* xs[1] = {(const block_q8_K*)x};
    dot_tile<T, 1>(n / QK_K, (const typename T::block*)w, xs, s);
}

// A weight row decoded once (for products with more columns than one tile): per chunk its Chunk,
// per block its D. The tile product over it does the same integer and float operations as
// dot_tile, so every column's result is bit-identical to vec_dot's whatever the column count.
struct DecodedRow {
    std::vector<Chunk> chunks;
    std::vector<float> D;
};

template <class T>
void decode_row(int64_t nb, const typename T::block* w, DecodedRow& d) {
    d.chunks.resize((size_t)nb * 8);
    d.D.resize((size_t)nb);
    for (int64_t i = 0; i < nb; ++i) {
        const typename T::State st(w[i]);
        d.D[(size_t)i] = st.D;
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) d.chunks[(size_t)i * 8 + j] = T::chunk(w[i], st, j);
    }
}

template <int NC>
inline void dot_tile_decoded(int64_t nb, const DecodedRow& d, const block_q8_K* const* xs, float* out) {
    constexpr int kSplit = NC <= 2 ? 2 : 1;
    __m256 acc[NC];
    for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        __m256i isum[NC], isum2[NC];
        for (int c = 0; c < NC; ++c) isum[c] = isum2[c] = _mm256_setzero_si256();
        const Chunk* ch = &d.chunks[(size_t)i * 8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) {
#pragma GCC unroll 8
            for (int c = 0; c < NC; ++c) {
                const __m256i x = load256(xs[c][i].qs + 32 * j);
                const __m256i p = _mm256_maddubs_epi16(ch[j].q, ch[j].s.apply(x));
                if (kSplit == 2 && (j & 1)) isum2[c] = dot_acc(isum2[c], p, ch[j].sc);
                else isum[c] = dot_acc(isum[c], p, ch[j].sc);
            }
        }
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) {
            const __m256i s = kSplit == 2 ? _mm256_add_epi32(isum[c], isum2[c]) : isum[c];
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(d.D[(size_t)i] * xs[c][i].d), _mm256_cvtepi32_ps(s), acc[c]);
        }
    }
    for (int c = 0; c < NC; ++c) out[c] = hsum(acc[c]);
}

template <class T>
void gemm(int64_t n, float* s, size_t ld_s, const void* w, size_t ld_w, int nr, const void* x, size_t ld_x,
          int nc) {
    const int64_t nb = n / QK_K;
    if (nc > IQ_MAXNC) {
        // Decode each weight row once for all its column tiles.
        thread_local DecodedRow dec;
        for (int r = 0; r < nr; ++r) {
            decode_row<T>(nb, (const typename T::block*)((const char*)w + (size_t)r * ld_w), dec);
            for (int c0 = 0; c0 < nc; c0 += IQ_MAXNC) {
                const int cn = nc - c0 < IQ_MAXNC ? nc - c0 : IQ_MAXNC;
                const block_q8_K* xs[IQ_MAXNC];
                for (int c = 0; c < cn; ++c) xs[c] = (const block_q8_K*)((const char*)x + (size_t)(c0 + c) * ld_x);
                float out[IQ_MAXNC] = {};
                switch (cn) {
                    case 1: dot_tile_decoded<1>(nb, dec, xs, out); break;
                    case 2: dot_tile_decoded<2>(nb, dec, xs, out); break;
                    case 3: dot_tile_decoded<3>(nb, dec, xs, out); break;
#if IQ_MAXNC > 4
                    case 4: dot_tile_decoded<4>(nb, dec, xs, out); break;
                    case 5: dot_tile_decoded<5>(nb, dec, xs, out); break;
                    case 6: dot_tile_decoded<6>(nb, dec, xs, out); break;
                    case 7: dot_tile_decoded<7>(nb, dec, xs, out); break;
#endif
                    default: dot_tile_decoded<IQ_MAXNC>(nb, dec, xs, out); break;
                }
                for (int c = 0; c < cn; ++c) s[(size_t)(c0 + c) * ld_s + r] = out[c];
            }
        }
        return;
    }
    for (int c0 = 0; c0 < nc; c0 += IQ_MAXNC) {
        const int cn = nc - c0 < IQ_MAXNC ? nc - c0 : IQ_MAXNC;
        const block_q8_K* xs[IQ_MAXNC];
        for (int c = 0; c < cn; ++c) xs[c] = (const block_q8_K*)((const char*)x + (size_t)(c0 + c) * ld_x);
        for (int r = 0; r < nr; ++r) {
            const auto* wr = (const typename T::block*)((const char*)w + (size_t)r * ld_w);
            float out[IQ_MAXNC] = {};
            switch (cn) {
                case 1: dot_tile<T, 1>(nb, wr, xs, out); break;
                case 2: dot_tile<T, 2>(nb, wr, xs, out); break;
                case 3: dot_tile<T, 3>(nb, wr, xs, out); break;
#if IQ_MAXNC > 4
                case 4: dot_tile<T, 4>(nb, wr, xs, out); break;
                case 5: dot_tile<T, 5>(nb, wr, xs, out); break;
                case 6: dot_tile<T, 6>(nb, wr, xs, out); break;
                case 7: dot_tile<T, 7>(nb, wr, xs, out); break;
#endif
                default: dot_tile<T, IQ_MAXNC>(nb, wr, xs, out); break;
            }
            for (int c = 0; c < cn; ++c) s[(size_t)(c0 + c) * ld_s + r] = out[c];
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Dequantization: value = (D * sc) * q in exactly the reference's float operations.

template <class T>
void to_float(const void* src, float* dst, int64_t n) {
    const auto* blocks = (const typename T::block*)src;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const typename T::block& b = blocks[i];
        const typename T::State st(b);
        float* y = dst + i * QK_K;
        for (int j = 0; j < 8; ++j) {
            const Chunk ch = T::chunk(b, st, j);
            alignas(32) int8_t q[32];
            alignas(32) int16_t sc[16];
            _mm256_store_si256((__m256i*)q, ch.s.apply(ch.q));
            _mm256_store_si256((__m256i*)sc, ch.sc);
            for (int half = 0; half < 2; ++half) {
                const __m256 dl = _mm256_set1_ps(st.D * (float)sc[8 * half]);
                for (int k = 0; k < 2; ++k) {
                    const int off = 16 * half + 8 * k;
                    const __m256 v =
                        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(q + off))));
                    _mm256_storeu_ps(y + 32 * j + off, _mm256_mul_ps(dl, v));
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------

template <class T>
constexpr CpuKernels make_kernels() {
    // from_float (the Q8_K quantizer) is filled in by iquants.cpp from the k-quant family.
    return CpuKernels{DType::Q8_K, nullptr, to_float<T>, vec_dot<T>, gemm<T>};
}

const CpuKernels k_iq2_xxs = make_kernels<IQ2XXS>();
const CpuKernels k_iq2_xs = make_kernels<IQ2XS>();
const CpuKernels k_iq2_s = make_kernels<IQ2S>();
const CpuKernels k_iq3_xxs = make_kernels<IQ3XXS>();
const CpuKernels k_iq3_s = make_kernels<IQ3S>();
const CpuKernels k_iq1_s = make_kernels<IQ1S>();
const CpuKernels k_iq1_m = make_kernels<IQ1M>();

}  // namespace

const CpuKernels* IQ_EXPORT(DType t) {
    switch (t) {
        case DType::IQ2_XXS: return &k_iq2_xxs;
        case DType::IQ2_XS: return &k_iq2_xs;
        case DType::IQ2_S: return &k_iq2_s;
        case DType::IQ3_XXS: return &k_iq3_xxs;
        case DType::IQ3_S: return &k_iq3_s;
        case DType::IQ1_S: return &k_iq1_s;
        case DType::IQ1_M: return &k_iq1_m;
        default: return nullptr;
    }
}

}  // namespace yiti::cpu::iq
