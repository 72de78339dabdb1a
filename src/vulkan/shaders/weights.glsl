// Weight rows of the matrix products, binding 0, one definition per weight type (GGUF layouts,
// src/quant/blocks.h; the values are those of the scalar reference, src/quant/ref_*.cpp):
//   W_F32     float
//   W_F16     IEEE half
//   W_BF16    bfloat16 (the top 16 bits of a float)
//   W_Q8_0    blocks of 32: half d, int8 q[32]                          x = q d            (34 bytes)
//   W_Q4_0    blocks of 32: half d, uint8 qs[16]                        x = (q - 8) d      (18 bytes)
//   W_Q4_1    blocks of 32: half d, half m, uint8 qs[16]                x = q d + m        (20 bytes)
//   W_Q5_0    blocks of 32: half d, uint32 qh, uint8 qs[16]             x = (q - 16) d     (22 bytes)
//   W_Q5_1    blocks of 32: half d, half m, uint32 qh, uint8 qs[16]     x = q d + m        (24 bytes)
//   W_IQ4_NL  blocks of 32: half d, uint8 qs[16]                        x = kv[q] d        (18 bytes)
//             (32-element blocks: qs[i] holds element i in its low nibble, i + 16 in its high one;
//             Q5's qh bit i is the fifth bit of element i)
//   W_Q2_K    blocks of 256: scales[16], qs[64], half d, half dmin                          (84 bytes)
//   W_Q3_K    blocks of 256: hmask[32], qs[64], scales[12] (6-bit), half d                  (110 bytes)
//   W_Q4_K    blocks of 256: half d, half dmin, scales[12] (6-bit), qs[128]                 (144 bytes)
//   W_Q5_K    blocks of 256: half d, half dmin, scales[12] (6-bit), qh[32], qs[128]         (176 bytes)
//   W_Q6_K    blocks of 256: ql[128], qh[64], int8 scales[16], half d                       (210 bytes)
//   W_IQ4_XS  blocks of 256: half d, uint16 scales_h, scales_l[4], qs[128]                  (136 bytes)
// Offsets and strides are in the buffer's element units (floats for F32, 16-bit words otherwise).
// Every block above is a whole number of 16-bit words and every field of it starts on an even
// byte, so the buffer is read as 16-bit words (two words make an unaligned 32-bit value) and a
// binding may start at any even byte.
//
// Float types: w_load(i) reads one element.
// Quantized types: a row is read in units of 8 elements, four per 32 elements of the row (units
// 4m .. 4m+3 hold elements 32m .. 32m+31, in some order):
//   w_unit(base, u, v)      the 8 dequantized values of unit u of the row starting at word `base`
//   w_unit_elem(u, k)       the element index (within the row) of value k of unit u
// Every value is formed with the reference's operations in its order, so it is the reference's
// float (the products of a half and small integers are exact in F32).
#extension GL_EXT_shader_16bit_storage : require

#if defined(W_F32)
layout(binding = 0) readonly buffer WeightBuf { float w_data[]; };
float w_load(uint i) { return w_data[i]; }
#define W_FLOAT 1

#elif defined(W_F16)
layout(binding = 0) readonly buffer WeightBuf { float16_t w_data[]; };
float w_load(uint i) { return float(w_data[i]); }
#define W_FLOAT 1

#elif defined(W_BF16)
layout(binding = 0) readonly buffer WeightBuf { uint16_t w_data[]; };
float w_load(uint i) { return uintBitsToFloat(uint(w_data[i]) << 16); }
#define W_FLOAT 1

#else
layout(binding = 0) readonly buffer WeightBuf { uint16_t w_data[]; };

// The half at word i.
float w_half(uint i) { return unpackHalf2x16(uint(w_data[i])).x; }
// Four bytes from word i on (two words: no 4-byte alignment needed).
uint w_u32(uint i) { return uint(w_data[i]) | (uint(w_data[i + 1u]) << 16); }
// Byte b counted from word `base` (base is even-byte aligned, b any byte offset).
uint w_byte(uint base, uint b) { return (uint(w_data[base + (b >> 1)]) >> ((b & 1u) * 8u)) & 0xFFu; }

#if defined(W_Q4_0) || defined(W_Q4_1) || defined(W_Q5_0) || defined(W_Q5_1) || defined(W_IQ4_NL)
// 32-element blocks. Unit u & 3 = j takes bytes qs[4j .. 4j+3]: elements 4j .. 4j+3 (low nibbles)
// and 16+4j .. 16+4j+3 (high nibbles).
uint w_unit_elem(uint u, uint k) { return (u >> 2) * 32u + (u & 3u) * 4u + (k < 4u ? k : k + 12u); }
#else
// 256-element blocks (and Q8_0): unit u holds elements 8u .. 8u+7 of the row.
uint w_unit_elem(uint u, uint k) { return u * 8u + k; }
#endif

#if defined(W_IQ4_NL) || defined(W_IQ4_XS)
const float kvalues_iq4nl[16] = float[16](-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0,
                                          1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0);
#endif

#if defined(W_Q8_0)
#define W_BLOCK_WORDS 17u
void w_unit(uint base, uint u, out float v[8]) {
    const uint b = base + (u >> 2) * W_BLOCK_WORDS;
    const float d = w_half(b);
    const uint qi = b + 1u + (u & 3u) * 4u;
    [[unroll]] for (uint j = 0; j < 4; ++j) {
        const int word = int(uint(w_data[qi + j]));
        v[2 * j] = float(bitfieldExtract(word, 0, 8)) * d;      // sign-extending: int8
        v[2 * j + 1] = float(bitfieldExtract(word, 8, 8)) * d;
    }
}

#elif defined(W_Q4_0) || defined(W_Q4_1) || defined(W_IQ4_NL)
#if defined(W_Q4_1)
#define W_BLOCK_WORDS 10u
#define W_QS_WORD 2u
#else
#define W_BLOCK_WORDS 9u
#define W_QS_WORD 1u
#endif
void w_unit(uint base, uint u, out float v[8]) {
    const uint b = base + (u >> 2) * W_BLOCK_WORDS;
    const float d = w_half(b);
#if defined(W_Q4_1)
    const float m = w_half(b + 1u);
#endif
    const uint bytes = w_u32(b + W_QS_WORD + (u & 3u) * 2u);
    [[unroll]] for (uint j = 0; j < 4; ++j) {
        const uint lo = bitfieldExtract(bytes, int(8 * j), 4), hi = bitfieldExtract(bytes, int(8 * j + 4), 4);
#if defined(W_Q4_0)
        v[j] = float(int(lo) - 8) * d;
        v[4 + j] = float(int(hi) - 8) * d;
#elif defined(W_Q4_1)
        v[j] = float(lo) * d + m;
        v[4 + j] = float(hi) * d + m;
#else
        v[j] = kvalues_iq4nl[lo] * d;
        v[4 + j] = kvalues_iq4nl[hi] * d;
#endif
    }
}

#elif defined(W_Q5_0) || defined(W_Q5_1)
#if defined(W_Q5_1)
#define W_BLOCK_WORDS 12u
#define W_QH_WORD 2u
#else
#define W_BLOCK_WORDS 11u
#define W_QH_WORD 1u
#endif
void w_unit(uint base, uint u, out float v[8]) {
    const uint b = base + (u >> 2) * W_BLOCK_WORDS;
    const uint j0 = (u & 3u) * 4u;  // elements j0 .. j0+3 and 16+j0 .. 16+j0+3
    const float d = w_half(b);
#if defined(W_Q5_1)
    const float m = w_half(b + 1u);
#endif
    const uint qh = w_u32(b + W_QH_WORD);
    const uint bytes = w_u32(b + W_QH_WORD + 2u + (u & 3u) * 2u);
    [[unroll]] for (uint j = 0; j < 4; ++j) {
        const uint lo = bitfieldExtract(bytes, int(8 * j), 4) | (bitfieldExtract(qh, int(j0 + j), 1) << 4);
        const uint hi = bitfieldExtract(bytes, int(8 * j + 4), 4) | (bitfieldExtract(qh, int(j0 + j + 16u), 1) << 4);
#if defined(W_Q5_0)
        v[j] = float(int(lo) - 16) * d;
        v[4 + j] = float(int(hi) - 16) * d;
#else
        v[j] = float(lo) * d + m;
        v[4 + j] = float(hi) * d + m;
#endif
    }
}

#elif defined(W_Q2_K)
// Element e = 32c + l (c = u / 4 within the block, l = 8 (u & 3) + k): bits 2 (c & 3) of
// qs[32 (c / 4) + l]; scale byte scales[e / 16] (scale low, min high).
#define W_BLOCK_WORDS 42u
void w_unit(uint base, uint u, out float v[8]) {
    const uint b = base + (u >> 5) * W_BLOCK_WORDS;
    const uint c = (u >> 2) & 7u, s = u & 3u;
    const uint sb = w_byte(b, 2u * c + (s >> 1));
    const float dl = w_half(b + 40u) * float(sb & 15u);
    const float ml = w_half(b + 41u) * float(sb >> 4);
    const uint qw = b + 8u + 16u * (c >> 2) + 4u * s;  // qs at byte 16
    const int sh = int(2u * (c & 3u));
    [[unroll]] for (uint j = 0; j < 4; ++j) {
        const uint w = uint(w_data[qw + j]);
        v[2 * j] = dl * float(bitfieldExtract(w, sh, 2)) - ml;
        v[2 * j + 1] = dl * float(bitfieldExtract(w, sh + 8, 2)) - ml;
    }
}

#elif defined(W_Q3_K)
// Element e = 32c + l: low bits 2 (c & 3) of qs[32 (c / 4) + l], high bit c of hmask[l],
// q = (low | high << 2) - 4; scale k = e / 16: 4 low bits in scales[k % 8] (nibble k / 8),
// 2 high bits in scales[8 + k % 4] (bits 2 (k / 4)), minus 32.
#define W_BLOCK_WORDS 55u
void w_unit(uint base, uint u, out float v[8]) {
    const uint b = base + (u >> 5) * W_BLOCK_WORDS;
    const uint c = (u >> 2) & 7u, s = u & 3u;
    const uint k = 2u * c + (s >> 1);
    const uint lo = (w_byte(b, 96u + (k & 7u)) >> (4u * (k >> 3))) & 15u;
    const uint hi = (w_byte(b, 104u + (k & 3u)) >> (2u * (k >> 2))) & 3u;
    const float dl = w_half(b + 54u) * float(int(lo | (hi << 4)) - 32);
    const uint qw = b + 16u + 16u * (c >> 2) + 4u * s;  // qs at byte 32
    const uint hw = b + 4u * s;                         // hmask at byte 0
    const int sh = int(2u * (c & 3u));
    [[unroll]] for (uint j = 0; j < 4; ++j) {
        const uint w = uint(w_data[qw + j]), h = uint(w_data[hw + j]);
        const uint q0 = bitfieldExtract(w, sh, 2) | (bitfieldExtract(h, int(c), 1) << 2);
        const uint q1 = bitfieldExtract(w, sh + 8, 2) | (bitfieldExtract(h, int(c + 8u), 1) << 2);
        v[2 * j] = dl * float(int(q0) - 4);
        v[2 * j + 1] = dl * float(int(q1) - 4);
    }
}

#elif defined(W_Q4_K) || defined(W_Q5_K)
// Sub-block c = e / 32 (c = u / 4 within the block) has a 6-bit scale and min (get_scale_min_k4):
// c < 4: scales[c] & 63, scales[c + 4] & 63; else the low nibble / high nibble of scales[c + 4]
// with the top two bits of scales[c - 4] / scales[c] above them. Element e = 32c + l: nibble
// (c & 1) of qs[32 (c / 2) + l] (Q5_K: plus bit c of qh[l] as the fifth bit).
#if defined(W_Q4_K)
#define W_BLOCK_WORDS 72u
#define W_QS_WORD 8u
#else
#define W_BLOCK_WORDS 88u
#define W_QS_WORD 24u
#endif
void w_unit(uint base, uint u, out float v[8]) {
    const uint b = base + (u >> 5) * W_BLOCK_WORDS;
    const uint c = (u >> 2) & 7u, s = u & 3u;
    uint sc, mn;
    if (c < 4u) {
        sc = w_byte(b, 4u + c) & 63u;
        mn = w_byte(b, 8u + c) & 63u;
    } else {
        const uint x = w_byte(b, 8u + c);
        sc = (x & 15u) | ((w_byte(b, c) >> 6) << 4);
        mn = (x >> 4) | ((w_byte(b, 4u + c) >> 6) << 4);
    }
    const float dl = w_half(b) * float(sc);
    const float ml = w_half(b + 1u) * float(mn);
    const uint qw = b + W_QS_WORD + 16u * (c >> 1) + 4u * s;
    const int sh = int(4u * (c & 1u));
#if defined(W_Q5_K)
    const uint hw = b + 8u + 4u * s;  // qh at byte 16
#endif
    [[unroll]] for (uint j = 0; j < 4; ++j) {
        const uint w = uint(w_data[qw + j]);
        uint q0 = bitfieldExtract(w, sh, 4), q1 = bitfieldExtract(w, sh + 8, 4);
#if defined(W_Q5_K)
        const uint h = uint(w_data[hw + j]);
        q0 |= bitfieldExtract(h, int(c), 1) << 4;
        q1 |= bitfieldExtract(h, int(c + 8u), 1) << 4;
#endif
        v[2 * j] = dl * float(q0) - ml;
        v[2 * j + 1] = dl * float(q1) - ml;
    }
}

#elif defined(W_Q6_K)
// Element e = 32c + l (h = c / 4, j = c & 3): nibble j / 2 of ql[64 h + 32 (j & 1) + l], bits 2j of
// qh[32 h + l] above it, minus 32; int8 scale scales[e / 16].
#define W_BLOCK_WORDS 105u
void w_unit(uint base, uint u, out float v[8]) {
    const uint b = base + (u >> 5) * W_BLOCK_WORDS;
    const uint c = (u >> 2) & 7u, s = u & 3u;
    const uint h = c >> 2, j4 = c & 3u;
    const int sc = bitfieldExtract(int(w_byte(b, 192u + 2u * c + (s >> 1))), 0, 8);  // int8
    const float dl = w_half(b + 104u) * float(sc);
    const uint lw = b + 32u * h + 16u * (j4 & 1u) + 4u * s;  // ql at byte 0
    const uint hw = b + 64u + 16u * h + 4u * s;              // qh at byte 128
    const int lsh = int(4u * (j4 >> 1)), hsh = int(2u * j4);
    [[unroll]] for (uint j = 0; j < 4; ++j) {
        const uint lo = uint(w_data[lw + j]), hi = uint(w_data[hw + j]);
        const uint q0 = bitfieldExtract(lo, lsh, 4) | (bitfieldExtract(hi, hsh, 2) << 4);
        const uint q1 = bitfieldExtract(lo, lsh + 8, 4) | (bitfieldExtract(hi, hsh + 8, 2) << 4);
        v[2 * j] = dl * float(int(q0) - 32);
        v[2 * j + 1] = dl * float(int(q1) - 32);
    }
}

#elif defined(W_IQ4_XS)
// Sub-block ib = e / 32 (ib = u / 4 within the block): 6-bit scale, low nibble ib & 1 of
// scales_l[ib / 2], high bits 2 ib of scales_h, minus 32. Element 32 ib + l: the low nibble of
// qs[16 ib + l] for l < 16, the high nibble of qs[16 ib + l - 16] above, through the table.
#define W_BLOCK_WORDS 68u
void w_unit(uint base, uint u, out float v[8]) {
    const uint b = base + (u >> 5) * W_BLOCK_WORDS;
    const uint ib = (u >> 2) & 7u, s = u & 3u;
    const uint lo = (w_byte(b, 4u + (ib >> 1)) >> (4u * (ib & 1u))) & 15u;
    const uint hi = (uint(w_data[b + 1u]) >> (2u * ib)) & 3u;
    const float dl = w_half(b) * float(int(lo | (hi << 4)) - 32);
    const uint qw = b + 4u + 8u * ib + 4u * (s & 1u);  // qs at byte 8
    const int sh = int(4u * (s >> 1));
    [[unroll]] for (uint j = 0; j < 4; ++j) {
        const uint w = uint(w_data[qw + j]);
        v[2 * j] = dl * kvalues_iq4nl[bitfieldExtract(w, sh, 4)];
        v[2 * j + 1] = dl * kvalues_iq4nl[bitfieldExtract(w, sh + 8, 4)];
    }
}

#else
#error "no weight type defined"
#endif
#endif
