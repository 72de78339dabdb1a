// The 6-bit scales and mins of the packed Q4_K / Q5_K groups (layout in packed_layout.h), decoded
// into AVX-512 lanes (one per row) by the VNNI and AMX kernels. Internal to src/cpu; include only
// from files compiled for AVX-512.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "cpu/packed_layout.h"

namespace yiti::cpu {

// The three scale words of a group block, one lane per row.
struct Q45Scales {
    __m512i w0, w1, w2;
    explicit Q45Scales(const uint32_t (*w)[kPR])
        : w0(_mm512_loadu_si512(w[0])), w1(_mm512_loadu_si512(w[1])), w2(_mm512_loadu_si512(w[2])) {}
    // sc[j] of every row, as int32.
    template <int j>
    __m512i sc() const {
        return _mm512_and_si512(_mm512_srli_epi32(j < 4 ? w0 : w1, 8 * (j % 4)), _mm512_set1_epi32(63));
    }
    // mn[2p] | mn[2p + 1] << 16 of every row: int16 pairs for dpwssd against (bsum32[2p], bsum32[2p + 1]).
    template <int p>
    __m512i mn_pair() const {
        const __m512i lo = _mm512_and_si512(_mm512_srli_epi32(w2, 4 * p), _mm512_set1_epi32(0x000F000F));
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi32(p < 2 ? w0 : w1, p % 2 ? 10 : 2), _mm512_set1_epi32(0x00300030));
        return _mm512_or_si512(lo, hi);
    }
};

// Packs one row's scales and mins (6-bit values) into lane r of w.
inline void pack_q45_scales(const int sc[8], const int mn[8], uint32_t (*w)[kPR], int r) {
    uint32_t w0 = 0, w1 = 0, w2 = 0;
    for (int j = 0; j < 4; ++j) {
        w0 |= (uint32_t)(sc[j] & 63) << (8 * j);
        w1 |= (uint32_t)(sc[4 + j] & 63) << (8 * j);
    }
    for (int p = 0; p < 4; ++p) {
        w2 |= (uint32_t)(mn[2 * p] & 15) << (4 * p);
        w2 |= (uint32_t)(mn[2 * p + 1] & 15) << (16 + 4 * p);
    }
    // High two bits of mn[2p] / mn[2p + 1]: bits 6 / 22 (p even) or 14 / 30 (p odd) of w0 (p < 2) or w1.
    for (int p = 0; p < 4; ++p) {
        uint32_t& t = p < 2 ? w0 : w1;
        const int base = p % 2 ? 14 : 6;
        t |= (uint32_t)((mn[2 * p] >> 4) & 3) << base;
        t |= (uint32_t)((mn[2 * p + 1] >> 4) & 3) << (base + 16);
    }
    w[0][r] = w0;
    w[1][r] = w1;
    w[2][r] = w2;
}

}  // namespace yiti::cpu
