// Block layouts, byte-compatible with GGUF / ggml. Every struct's size is checked.
#pragma once
#include <cstdint>

namespace yiti {

using f16_t = uint16_t;  // IEEE half, stored as bits
using bf16_t = uint16_t;

constexpr int QK4_0 = 32;
constexpr int QK4_1 = 32;
constexpr int QK5_0 = 32;
constexpr int QK5_1 = 32;
constexpr int QK8_0 = 32;
constexpr int QK8_1 = 32;
constexpr int QK4_NL = 32;
constexpr int QK_K = 256;
constexpr int K_SCALE_SIZE = 12;

struct block_q4_0 {
    f16_t d;             // scale
    uint8_t qs[QK4_0 / 2];  // nibbles: low = elements 0..15, high = 16..31; x = (q - 8) * d
};
static_assert(sizeof(block_q4_0) == 18);

struct block_q4_1 {
    f16_t d;  // scale
    f16_t m;  // min: x = q * d + m
    uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(block_q4_1) == 20);

struct block_q5_0 {
    f16_t d;
    uint8_t qh[4];  // 5th bit of each of the 32 quants (little-endian uint32)
    uint8_t qs[QK5_0 / 2];
};
static_assert(sizeof(block_q5_0) == 22);

struct block_q5_1 {
    f16_t d;
    f16_t m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(block_q5_1) == 24);

struct block_q8_0 {
    f16_t d;
    int8_t qs[QK8_0];
};
static_assert(sizeof(block_q8_0) == 34);

struct block_q8_1 {
    f16_t d;  // scale
    f16_t s;  // d * sum(qs)
    int8_t qs[QK8_1];
};
static_assert(sizeof(block_q8_1) == 36);

struct block_iq4_nl {
    f16_t d;
    uint8_t qs[QK4_NL / 2];  // indices into the non-linear table kvalues_iq4nl
};
static_assert(sizeof(block_iq4_nl) == 18);

// 2.625 bits per weight: 16 sub-blocks of 16, 4-bit scale and 4-bit min each.
struct block_q2_K {
    uint8_t scales[QK_K / 16];  // low 4 bits scale, high 4 bits min
    uint8_t qs[QK_K / 4];       // 2-bit quants
    f16_t d;                    // super-block scale for scales
    f16_t dmin;                 // super-block scale for mins
};
static_assert(sizeof(block_q2_K) == 84);

// 3.4375 bits per weight: 16 sub-blocks of 16, 6-bit scales.
struct block_q3_K {
    uint8_t hmask[QK_K / 8];  // high bit of the quants
    uint8_t qs[QK_K / 4];     // low 2 bits
    uint8_t scales[12];       // 16 6-bit scales, packed
    f16_t d;
};
static_assert(sizeof(block_q3_K) == 110);

// 4.5 bits per weight: 8 sub-blocks of 32, 6-bit scale and min each.
struct block_q4_K {
    f16_t d;
    f16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q4_K) == 144);

// 5.5 bits per weight.
struct block_q5_K {
    f16_t d;
    f16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q5_K) == 176);

// 6.5625 bits per weight: 16 sub-blocks of 16, 8-bit scales.
struct block_q6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    f16_t d;
};
static_assert(sizeof(block_q6_K) == 210);

// Activation format for k-quant dot products.
struct block_q8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];  // sums of groups of 16
};
static_assert(sizeof(block_q8_K) == 292);

// 4.25 bits per weight: non-linear 4-bit values, 8 sub-blocks of 32 with 6-bit scales.
struct block_iq4_xs {
    f16_t d;
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_iq4_xs) == 136);

// The IQ4_NL / IQ4_XS value table.
inline constexpr int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                             1,    13,   25,  38,  53,  69,  89,  113};

// ------------------------------------------------------------------------------------------------
// The i-quants (grids in quant/iq_grids.h). Every element is (scale of its 16 or 32 elements) times a
// grid value with a sign; see src/quant/ref_iquants.cpp for the exact decoding of each layout.

// 2.0625 bits per weight. Per 32 elements two uint32: four 8-bit grid indices (iq2xxs_grid), then
// four 7-bit sign groups and a 4-bit scale in bits 28..31.
struct block_iq2_xxs {
    f16_t d;
    uint16_t qs[QK_K / 8];
};
static_assert(sizeof(block_iq2_xxs) == 66);

// 2.3125 bits per weight. Per 8 elements a uint16: 9-bit grid index (iq2xs_grid), 7-bit signs;
// a 4-bit scale per 16 elements.
struct block_iq2_xs {
    f16_t d;
    uint16_t qs[QK_K / 8];
    uint8_t scales[QK_K / 32];
};
static_assert(sizeof(block_iq2_xs) == 74);

// 2.5625 bits per weight. qs[0..31]: low 8 bits of the 10-bit grid indices (iq2s_grid), qs[32..63]:
// full 8-bit sign masks; qh: the high 2 bits of the indices; a 4-bit scale per 16 elements.
struct block_iq2_s {
    f16_t d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t scales[QK_K / 32];
};
static_assert(sizeof(block_iq2_s) == 82);

// 3.0625 bits per weight. qs[0..63]: 8-bit grid indices (iq3xxs_grid, 4 elements each);
// qs[64..95]: per 32 elements a uint32 of four 7-bit sign groups and a 4-bit scale in bits 28..31.
struct block_iq3_xxs {
    f16_t d;
    uint8_t qs[3 * QK_K / 8];
};
static_assert(sizeof(block_iq3_xxs) == 98);

// 3.4375 bits per weight. 9-bit grid indices (iq3s_grid, 4 elements each): low 8 bits in qs, the
// ninth in qh; full 8-bit sign masks; a 4-bit scale per 32 elements.
struct block_iq3_s {
    f16_t d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t signs[QK_K / 8];
    uint8_t scales[QK_K / 64];
};
static_assert(sizeof(block_iq3_s) == 110);

// 1.5625 bits per weight. 11-bit grid indices (iq1s_grid, values -1/0/+1): low 8 bits in qs, high 3
// bits in qh (per 32 elements a uint16: 4 x 3 index bits, a 3-bit scale in bits 12..14, the sign of
// the +-1/8 shift in bit 15).
struct block_iq1_s {
    f16_t d;
    uint8_t qs[QK_K / 8];
    uint16_t qh[QK_K / 32];
};
static_assert(sizeof(block_iq1_s) == 50);

// 1.75 bits per weight. As IQ1_S, but the shift sign is per 8 elements and the 3-bit scales per 16;
// the fp16 super-block scale is spread over the top nibbles of the four uint16 of scales.
struct block_iq1_m {
    uint8_t qs[QK_K / 8];
    uint8_t qh[QK_K / 16];
    uint8_t scales[QK_K / 32];
};
static_assert(sizeof(block_iq1_m) == 56);

}  // namespace yiti
