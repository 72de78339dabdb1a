// Scalar reference for the i-quants: IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M (dot
// products with Q8_K activations). This file is the specification the fast CPU kernels are tested
// against. Only dequantization and the dot product are defined: writing these types is not supported.
//
// Every block is read into one common model: 256 signed integers q[e], sixteen integer scales sc[k]
// (one per 16 elements; formats with 32-element scales repeat each value twice) and one float D:
//
//     value[e] = (D * sc[e/16]) * q[e]                          (in float, in exactly this order)
//
// with, per format (d = the block's fp16 scale, g = grid byte, s = the element's sign, 4-bit scale
// field l, 3-bit field l3):
//
//     IQ2_XXS  q = s * g (g in 8, 25, 43)      sc = 2l + 1    D = d / 8
//     IQ2_XS   q = s * g                       sc = 2l + 1    D = d / 8     (scales per 16)
//     IQ2_S    q = s * g                       sc = 2l + 1    D = d / 8     (scales per 16)
//     IQ3_XXS  q = s * g (g in 4 .. 62)        sc = 2l + 1    D = d / 4
//     IQ3_S    q = s * g (g in 1 .. 15)        sc = 2l + 1    D = d
//     IQ1_S    q = 8 g + t (g in -1, 0, 1; t = -1 or +1: ggml's +-1/8 "delta")
//                                              sc = 2l3 + 1   D = d / 8
//     IQ1_M    as IQ1_S, t per 8 elements      sc = 2l3 + 1   D = d / 8     (scales per 16)
//
// The powers of two in D are exact, and value[e] equals ggml's dequantization bit for bit (ggml
// computes e.g. IQ2_XXS as (d * (0.5 + l) * 0.25) * g * s, which rounds the same single product).
// The dot product with a Q8_K row (x[e] = dx * qx[e]) is
//
//     block = (dx * D) * isum,   isum = sum_k sc[k] * sum_{e in k} q[e] * qx[e]   (exact int32)
//
// summed over blocks in float in block order.
#include <cstring>

#include "core/fp16.h"
#include "quant/iq_grids.h"
#include "quant/quant.h"

namespace yiti::quant {

namespace {

struct Unpacked {
    float D = 0;
    int8_t q[QK_K];
    int16_t sc[QK_K / 16];
};

inline uint8_t grid_byte64(const uint64_t* grid, int idx, int k) { return (uint8_t)(grid[idx] >> (8 * k)); }
inline uint8_t grid_byte32(const uint32_t* grid, int idx, int k) { return (uint8_t)(grid[idx] >> (8 * k)); }
inline int sign_of(uint8_t mask, int k) { return (mask >> k) & 1 ? -1 : 1; }

uint32_t load_u32(const void* p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

// IQ2_XXS: 32-element chunk ib uses qs[4ib .. 4ib+3] read as two uint32 a, b. Group l (8 elements
// 32ib + 8l ..) has grid index byte l of a and signs iq_signs8(b >> 7l); scale field b >> 28.
void unpack_iq2_xxs(const block_iq2_xxs& b, Unpacked& u) {
    u.D = fp16_to_fp32(b.d) * 0.125f;
    for (int ib = 0; ib < 8; ++ib) {
        const uint32_t a = load_u32(&b.qs[4 * ib]), s = load_u32(&b.qs[4 * ib + 2]);
        for (int l = 0; l < 4; ++l) {
            const int idx = (a >> (8 * l)) & 0xFF;
            const uint8_t sg = iq_signs8(s >> (7 * l));
            for (int k = 0; k < 8; ++k)
                u.q[32 * ib + 8 * l + k] = (int8_t)(sign_of(sg, k) * grid_byte64(k_iq2xxs_grid, idx, k));
        }
        u.sc[2 * ib] = u.sc[2 * ib + 1] = (int16_t)(2 * (s >> 28) + 1);
    }
}

// IQ2_XS: group g (8 elements 8g ..) is qs[g]: grid index bits 0..8, signs iq_signs8(qs[g] >> 9).
// 16-element sub-block k has scale field (scales[k/2] >> 4 (k%2)) & 15.
void unpack_iq2_xs(const block_iq2_xs& b, Unpacked& u) {
    u.D = fp16_to_fp32(b.d) * 0.125f;
    for (int g = 0; g < 32; ++g) {
        const int idx = b.qs[g] & 511;
        const uint8_t sg = iq_signs8(b.qs[g] >> 9);
        for (int k = 0; k < 8; ++k) u.q[8 * g + k] = (int8_t)(sign_of(sg, k) * grid_byte64(k_iq2xs_grid, idx, k));
    }
    for (int k = 0; k < 16; ++k) u.sc[k] = (int16_t)(2 * ((b.scales[k / 2] >> (4 * (k % 2))) & 15) + 1);
}

// IQ2_S: group g (8 elements 8g ..; chunk ib = g/4, l = g%4): grid index qs[g] | ((qh[ib] >> 2l) & 3) << 8,
// sign mask qs[32 + g]. Scales as IQ2_XS.
void unpack_iq2_s(const block_iq2_s& b, Unpacked& u) {
    u.D = fp16_to_fp32(b.d) * 0.125f;
    for (int g = 0; g < 32; ++g) {
        const int ib = g / 4, l = g % 4;
        const int idx = b.qs[g] | (((b.qh[ib] >> (2 * l)) & 3) << 8);
        const uint8_t sg = b.qs[32 + g];
        for (int k = 0; k < 8; ++k) u.q[8 * g + k] = (int8_t)(sign_of(sg, k) * grid_byte64(k_iq2s_grid, idx, k));
    }
    for (int k = 0; k < 16; ++k) u.sc[k] = (int16_t)(2 * ((b.scales[k / 2] >> (4 * (k % 2))) & 15) + 1);
}

// IQ3_XXS: chunk ib: the uint32 s at qs[64 + 4ib]; group l (8 elements) is grid entries qs[8ib + 2l]
// (elements 0..3) and qs[8ib + 2l + 1] (4..7) with signs iq_signs8(s >> 7l); scale field s >> 28.
void unpack_iq3_xxs(const block_iq3_xxs& b, Unpacked& u) {
    u.D = fp16_to_fp32(b.d) * 0.25f;
    for (int ib = 0; ib < 8; ++ib) {
        const uint32_t s = load_u32(&b.qs[64 + 4 * ib]);
        for (int l = 0; l < 4; ++l) {
            const uint8_t sg = iq_signs8(s >> (7 * l));
            for (int k = 0; k < 8; ++k) {
                const int idx = b.qs[8 * ib + 2 * l + k / 4];
                u.q[32 * ib + 8 * l + k] = (int8_t)(sign_of(sg, k) * grid_byte32(k_iq3xxs_grid, idx, k % 4));
            }
        }
        u.sc[2 * ib] = u.sc[2 * ib + 1] = (int16_t)(2 * (s >> 28) + 1);
    }
}

// IQ3_S: quad m (4 elements 4m ..; chunk ib = m/8, j = m%8): grid index qs[m] | ((qh[ib] >> j) & 1) << 8;
// element e's sign is bit e%8 of signs[e/8]. Chunk ib has scale field (scales[ib/2] >> 4 (ib%2)) & 15.
void unpack_iq3_s(const block_iq3_s& b, Unpacked& u) {
    u.D = fp16_to_fp32(b.d);
    for (int m = 0; m < 64; ++m) {
        const int ib = m / 8, j = m % 8;
        const int idx = b.qs[m] | (((b.qh[ib] >> j) & 1) << 8);
        for (int k = 0; k < 4; ++k) {
            const int e = 4 * m + k;
            u.q[e] = (int8_t)(sign_of(b.signs[e / 8], e % 8) * grid_byte32(k_iq3s_grid, idx, k));
        }
    }
    for (int ib = 0; ib < 8; ++ib)
        u.sc[2 * ib] = u.sc[2 * ib + 1] = (int16_t)(2 * ((b.scales[ib / 2] >> (4 * (ib % 2))) & 15) + 1);
}

// IQ1_S: chunk ib has h = qh[ib]; group l (8 elements): grid index qs[4ib + l] | ((h >> 3l) & 7) << 8;
// scale field (h >> 12) & 7; shift sign t = -1 when bit 15 of h is set.
void unpack_iq1_s(const block_iq1_s& b, Unpacked& u) {
    u.D = fp16_to_fp32(b.d) * 0.125f;
    for (int ib = 0; ib < 8; ++ib) {
        const int h = b.qh[ib];
        const int t = (h & 0x8000) ? -1 : 1;
        for (int l = 0; l < 4; ++l) {
            const int idx = b.qs[4 * ib + l] | (((h >> (3 * l)) & 7) << 8);
            for (int k = 0; k < 8; ++k)
                u.q[32 * ib + 8 * l + k] = (int8_t)(8 * (int8_t)grid_byte64(k_iq1s_grid, idx, k) + t);
        }
        u.sc[2 * ib] = u.sc[2 * ib + 1] = (int16_t)(2 * ((h >> 12) & 7) + 1);
    }
}

// IQ1_M: the four uint16 sc[0..3] of scales hold the 3-bit scale fields, 16-element sub-block k in
// bits 3 (k%4) .. of sc[k/4], and in their top nibbles the fp16 d (sc[0] bits 12..15 are d's bits
// 0..3, sc[1]'s its bits 4..7, ...). Group g (8 elements; chunk ib = g/4, l = g%4) has the nibble
// n = qh[2ib + l/2] >> 4 (l%2): grid index qs[g] | (n & 7) << 8, shift sign t = -1 when n & 8.
void unpack_iq1_m(const block_iq1_m& b, Unpacked& u) {
    uint16_t sc[4];
    memcpy(sc, b.scales, 8);
    const uint16_t dbits = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000));
    u.D = fp16_to_fp32(dbits) * 0.125f;
    for (int g = 0; g < 32; ++g) {
        const int ib = g / 4, l = g % 4;
        const int n = (b.qh[2 * ib + l / 2] >> (4 * (l % 2))) & 15;
        const int idx = b.qs[g] | ((n & 7) << 8);
        const int t = (n & 8) ? -1 : 1;
        for (int k = 0; k < 8; ++k) u.q[8 * g + k] = (int8_t)(8 * (int8_t)grid_byte64(k_iq1s_grid, idx, k) + t);
    }
    for (int k = 0; k < 16; ++k) u.sc[k] = (int16_t)(2 * ((sc[k / 4] >> (3 * (k % 4))) & 7) + 1);
}

template <class Block, void (*Unpack)(const Block&, Unpacked&)>
void to_float_t(const void* src, float* dst, int64_t n) {
    const Block* b = (const Block*)src;
    Unpacked u;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        Unpack(b[i], u);
        for (int e = 0; e < QK_K; ++e) dst[e] = (u.D * (float)u.sc[e / 16]) * (float)u.q[e];
        dst += QK_K;
    }
}

template <class Block, void (*Unpack)(const Block&, Unpacked&)>
float vec_dot_t(int64_t n, const void* w, const void* x) {
    const Block* b = (const Block*)w;
    const block_q8_K* y = (const block_q8_K*)x;
    Unpacked u;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        Unpack(b[i], u);
        int32_t isum = 0;
        for (int k = 0; k < 16; ++k) {
            int32_t s = 0;
            for (int l = 0; l < 16; ++l) s += (int32_t)u.q[16 * k + l] * y[i].qs[16 * k + l];
            isum += u.sc[k] * s;
        }
        sum += (y[i].d * u.D) * (float)isum;
    }
    return sum;
}

#define IQ_TRAITS(name, block)                                                                        \
    const RefTraits k_##name = {DType::Q8_K, to_float_t<block, unpack_##name>, nullptr,                \
                                vec_dot_t<block, unpack_##name>};
IQ_TRAITS(iq2_xxs, block_iq2_xxs)
IQ_TRAITS(iq2_xs, block_iq2_xs)
IQ_TRAITS(iq2_s, block_iq2_s)
IQ_TRAITS(iq3_xxs, block_iq3_xxs)
IQ_TRAITS(iq3_s, block_iq3_s)
IQ_TRAITS(iq1_s, block_iq1_s)
IQ_TRAITS(iq1_m, block_iq1_m)
#undef IQ_TRAITS

}  // namespace

const RefTraits* ref_traits_iquants(DType t) {
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

}  // namespace yiti::quant
