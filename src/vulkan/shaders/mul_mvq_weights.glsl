// The weight side of the integer products (mul_mvq.comp): a quantized weight row read in blocks
// of 32 elements (the activation's blocks, quantize_q8.comp), each as 32 signed 8-bit integers and
// the scales that turn them into the reference's values. Include after weights.glsl (w_data,
// w_half, w_u32, w_byte, W_BLOCK_WORDS of the type).
//
//   wq_block(base, blk, q, sc, mn, D, M)   block blk (elements 32 blk .. 32 blk + 31) of the row at
//                                          word `base`:
//     q[8]   the integers, packed as the activation's quants (word i: elements 4i .. 4i+3, one per
//            byte, int8)
//     sc     integer scales of the halves (elements 0 .. 15, 16 .. 31)
//     mn     integer mins of the halves (types with W_Q_MIN)
//     D, M   float scales
//   element e of half h is worth D * sc[h] * q[e] + M * mn[h], which is the reference's value
//   (src/quant/ref_*.cpp) up to its float roundings:
//     Q8_0    q               D = d
//     Q4_0    q - 8           D = d                     (the offset applied to the bytes)
//     Q4_1    q               D = d,  M = m,  mn = 1
//     Q5_0    q - 16          D = d
//     Q5_1    q               D = d,  M = m,  mn = 1
//     IQ4_NL  kvalues[q]      D = d                     (the table's values are int8)
//     Q2_K    q (2 bits)      D = d,  sc = scale nibbles,  M = -dmin, mn = min nibbles (per 16)
//     Q3_K    q - 4 (3 bits)  D = d,  sc = 6-bit scales - 32 (per 16)
//     Q4_K    q (4 bits)      D = d,  sc = 6-bit scale,  M = -dmin, mn = 6-bit min (per 32)
//     Q5_K    q (5 bits)      as Q4_K
//     Q6_K    q - 32 (6 bits) D = d,  sc = int8 scales (per 16)
//     IQ4_XS  kvalues[q]      D = d,  sc = 6-bit scale - 32 (per 32)
// A product with an activation block (quants a, scale dx, half sums s) is then exact in integers
// up to the last step:  dx * (D * (sc.x dot(q, a)[0..15] + sc.y dot(q, a)[16..31])
//                             + M * (mn.x s.x + mn.y s.y)).
// (|sc dot| <= 127 * 16 * 128 * 127 < 2^31: no int32 overflow.)

#if defined(W_Q4_1) || defined(W_Q5_1) || defined(W_Q2_K) || defined(W_Q4_K) || defined(W_Q5_K)
#define W_Q_MIN 1
#endif

// Bytes v in [0, 2k) minus k, per byte, as int8 (no carry between bytes).
uint wq_offset(uint v, uint k) {
    return (v + (0x80u - k) * 0x01010101u) ^ 0x80808080u;
}

// Bits 0 .. 3 of b to bit 0 of bytes 0 .. 3.
uint wq_spread4(uint b) {
    return (b & 1u) | ((b & 2u) << 7) | ((b & 4u) << 14) | ((b & 8u) << 21);
}

#if defined(W_IQ4_NL) || defined(W_IQ4_XS)
// The non-linear table (kvalues_iq4nl) as int8 bytes, in shared memory, where GPUs look tables up
// fast (a constant array indexed by a variable may become a copy in each thread's local memory).
const int wq_kvalues_init[16] = int[16](-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
shared uint wq_kvalues[16];
// Fills the table: every thread of the workgroup calls it, then a barrier.
void wq_init() {
    if (gl_LocalInvocationID.x == 0u) {
        [[unroll]] for (uint i = 0; i < 16u; ++i) wq_kvalues[i] = uint(wq_kvalues_init[i]) & 0xFFu;
    }
}
// The table's values of the nibbles in bytes 0 .. 3 of n (each < 16).
uint wq_iq4(uint n) {
    return wq_kvalues[n & 15u] | (wq_kvalues[(n >> 8) & 15u] << 8) | (wq_kvalues[(n >> 16) & 15u] << 16) |
           (wq_kvalues[n >> 24] << 24);
}
#define W_Q_INIT 1
#else
void wq_init() {}
#endif

void wq_block(uint base, uint blk, out uint q[8], out ivec2 sc, out ivec2 mn, out float D, out float M) {
    sc = ivec2(1);
    mn = ivec2(0);
    M = 0.0;
#if defined(W_Q8_0)
    const uint b = base + blk * W_BLOCK_WORDS;
    D = w_half(b);
    [[unroll]] for (uint i = 0; i < 8u; ++i) q[i] = w_u32(b + 1u + 2u * i);

#elif defined(W_Q4_0) || defined(W_Q4_1) || defined(W_IQ4_NL)
    // qs[j]: element j in the low nibble, j + 16 in the high one.
    const uint b = base + blk * W_BLOCK_WORDS;
    D = w_half(b);
#if defined(W_Q4_1)
    M = w_half(b + 1u);
    mn = ivec2(1);
#endif
    [[unroll]] for (uint i = 0; i < 4u; ++i) {
        const uint w = w_u32(b + W_QS_WORD + 2u * i);
        const uint lo = w & 0x0F0F0F0Fu, hi = (w >> 4) & 0x0F0F0F0Fu;
#if defined(W_Q4_0)
        q[i] = wq_offset(lo, 8u);
        q[4u + i] = wq_offset(hi, 8u);
#elif defined(W_Q4_1)
        q[i] = lo;
        q[4u + i] = hi;
#else
        q[i] = wq_iq4(lo);
        q[4u + i] = wq_iq4(hi);
#endif
    }

#elif defined(W_Q5_0) || defined(W_Q5_1)
    // As Q4_0, with bit e of qh the fifth bit of element e.
    const uint b = base + blk * W_BLOCK_WORDS;
    D = w_half(b);
#if defined(W_Q5_1)
    M = w_half(b + 1u);
    mn = ivec2(1);
#endif
    const uint qh = w_u32(b + W_QH_WORD);
    [[unroll]] for (uint i = 0; i < 4u; ++i) {
        const uint w = w_u32(b + W_QH_WORD + 2u + 2u * i);
        const uint lo = (w & 0x0F0F0F0Fu) | (wq_spread4((qh >> (4u * i)) & 15u) << 4);
        const uint hi = ((w >> 4) & 0x0F0F0F0Fu) | (wq_spread4((qh >> (16u + 4u * i)) & 15u) << 4);
#if defined(W_Q5_0)
        q[i] = wq_offset(lo, 16u);
        q[4u + i] = wq_offset(hi, 16u);
#else
        q[i] = lo;
        q[4u + i] = hi;
#endif
    }

#elif defined(W_Q2_K)
    // Sub-block c = blk & 7 of super-block blk >> 3: element 32c + l is bits 2 (c & 3) of
    // qs[32 (c / 4) + l] (qs at byte 16); scales[2c + l / 16]: scale low nibble, min high.
    const uint b = base + (blk >> 3) * W_BLOCK_WORDS, c = blk & 7u;
    const uint s0 = w_byte(b, 2u * c), s1 = w_byte(b, 2u * c + 1u);
    sc = ivec2(s0 & 15u, s1 & 15u);
    mn = ivec2(s0 >> 4, s1 >> 4);
    D = w_half(b + 40u);
    M = -w_half(b + 41u);
    const uint sh = 2u * (c & 3u);
    [[unroll]] for (uint i = 0; i < 8u; ++i) q[i] = (w_u32(b + 8u + 16u * (c >> 2) + 2u * i) >> sh) & 0x03030303u;

#elif defined(W_Q3_K)
    // Element 32c + l: bits 2 (c & 3) of qs[32 (c / 4) + l] (qs at byte 32), bit c of hmask[l]
    // above them, minus 4; scale k = 2c + l / 16: 4 bits in scales[k % 8] (nibble k / 8), 2 bits in
    // scales[8 + k % 4] (bits 2 (k / 4)), minus 32 (scales at byte 96).
    const uint b = base + (blk >> 3) * W_BLOCK_WORDS, c = blk & 7u;
    [[unroll]] for (uint h = 0; h < 2u; ++h) {
        const uint k = 2u * c + h;
        const uint lo = (w_byte(b, 96u + (k & 7u)) >> (4u * (k >> 3))) & 15u;
        const uint hi = (w_byte(b, 104u + (k & 3u)) >> (2u * (k >> 2))) & 3u;
        sc[h] = int(lo | (hi << 4)) - 32;
    }
    D = w_half(b + 54u);
    const uint sh = 2u * (c & 3u);
    [[unroll]] for (uint i = 0; i < 8u; ++i) {
        const uint lo = (w_u32(b + 16u + 16u * (c >> 2) + 2u * i) >> sh) & 0x03030303u;
        const uint hi = ((w_u32(b + 2u * i) >> c) & 0x01010101u) << 2;
        q[i] = wq_offset(lo | hi, 4u);
    }

#elif defined(W_Q4_K) || defined(W_Q5_K)
    // Sub-block c: 6-bit scale and min (get_scale_min_k4, as weights.glsl); element 32c + l is
    // nibble (c & 1) of qs[32 (c / 2) + l] (Q5_K: bit c of qh[l] above it, qh at byte 16).
    const uint b = base + (blk >> 3) * W_BLOCK_WORDS, c = blk & 7u;
    uint s, m;
    if (c < 4u) {
        s = w_byte(b, 4u + c) & 63u;
        m = w_byte(b, 8u + c) & 63u;
    } else {
        const uint x = w_byte(b, 8u + c);
        s = (x & 15u) | ((w_byte(b, c) >> 6) << 4);
        m = (x >> 4) | ((w_byte(b, 4u + c) >> 6) << 4);
    }
    sc = ivec2(int(s));
    mn = ivec2(int(m));
    D = w_half(b);
    M = -w_half(b + 1u);
    const uint sh = 4u * (c & 1u);
    [[unroll]] for (uint i = 0; i < 8u; ++i) {
        q[i] = (w_u32(b + W_QS_WORD + 16u * (c >> 1) + 2u * i) >> sh) & 0x0F0F0F0Fu;
#if defined(W_Q5_K)
        q[i] |= ((w_u32(b + 8u + 2u * i) >> c) & 0x01010101u) << 4;
#endif
    }

#elif defined(W_Q6_K)
    // Element 32c + l (h = c / 4, j = c & 3): nibble j / 2 of ql[64h + 32 (j & 1) + l], bits 2j of
    // qh[32h + l] above it (qh at byte 128), minus 32; int8 scales[2c + l / 16] (at byte 192).
    const uint b = base + (blk >> 3) * W_BLOCK_WORDS, c = blk & 7u;
    const uint h = c >> 2, j = c & 3u;
    sc = ivec2(bitfieldExtract(int(w_byte(b, 192u + 2u * c)), 0, 8),
               bitfieldExtract(int(w_byte(b, 193u + 2u * c)), 0, 8));
    D = w_half(b + 104u);
    [[unroll]] for (uint i = 0; i < 8u; ++i) {
        const uint lo = (w_u32(b + 32u * h + 16u * (j & 1u) + 2u * i) >> (4u * (j >> 1))) & 0x0F0F0F0Fu;
        const uint hi = ((w_u32(b + 64u + 16u * h + 2u * i) >> (2u * j)) & 0x03030303u) << 4;
        q[i] = wq_offset(lo | hi, 32u);
    }

#elif defined(W_IQ4_XS)
    // Sub-block ib: scale (nibble ib & 1 of scales_l[ib / 2] | bits 2 ib of scales_h << 4) - 32;
    // elements as IQ4_NL's block in qs[16 ib ..] (qs at byte 8).
    const uint b = base + (blk >> 3) * W_BLOCK_WORDS, ib = blk & 7u;
    const uint lo = (w_byte(b, 4u + (ib >> 1)) >> (4u * (ib & 1u))) & 15u;
    const uint hi = (uint(w_data[b + 1u]) >> (2u * ib)) & 3u;
    sc = ivec2(int(lo | (hi << 4)) - 32);
    D = w_half(b);
    [[unroll]] for (uint i = 0; i < 4u; ++i) {
        const uint w = w_u32(b + 4u + 8u * ib + 2u * i);
        q[i] = wq_iq4(w & 0x0F0F0F0Fu);
        q[4u + i] = wq_iq4((w >> 4) & 0x0F0F0F0Fu);
    }

#else
#error "no integer product for this weight type"
#endif
}
