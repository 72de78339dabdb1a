// Weight rows of the matrix products, binding 0, one definition per weight type (GGUF layouts):
//   W_F32   float
//   W_F16   IEEE half
//   W_Q8_0  blocks of 32: half d, int8 q[32];                 x = q * d           (34 bytes)
//   W_Q4_0  blocks of 32: half d, uint8 qs[16];                x = (nibble - 8) * d (18 bytes)
//           qs[i] holds element i in its low nibble and element i + 16 in its high nibble.
// Offsets and strides are in the buffer's element units (floats for F32, 16-bit words otherwise;
// every GGUF block is a whole number of 16-bit words).
//
// Float types: w_load(i) reads one element.
// Quantized types: a row is read in units of 8 elements, four per block of 32:
//   w_unit(base, u, q, d)   the 8 quants of unit u of the row starting at word `base` (as floats,
//                           offset removed) and the block's scale: the values are q[k] * d
//   w_unit_elem(u, k)       the element index (within the row) of quant k of unit u
#extension GL_EXT_shader_16bit_storage : require

#if defined(W_F32)
layout(binding = 0) readonly buffer WeightBuf { float w_data[]; };
float w_load(uint i) { return w_data[i]; }
#define W_FLOAT 1

#elif defined(W_F16)
layout(binding = 0) readonly buffer WeightBuf { float16_t w_data[]; };
float w_load(uint i) { return float(w_data[i]); }
#define W_FLOAT 1

#elif defined(W_Q8_0)
layout(binding = 0) readonly buffer WeightBuf { uint16_t w_data[]; };
#define W_BLOCK_WORDS 17u
void w_unit(uint base, uint u, out float q[8], out float d) {
    const uint b = base + (u >> 2) * W_BLOCK_WORDS;
    d = unpackHalf2x16(uint(w_data[b])).x;
    const uint qi = b + 1u + (u & 3u) * 4u;
    [[unroll]] for (uint j = 0; j < 4; ++j) {
        const int word = int(uint(w_data[qi + j]));
        q[2 * j] = float(bitfieldExtract(word, 0, 8));      // sign-extending: int8
        q[2 * j + 1] = float(bitfieldExtract(word, 8, 8));
    }
}
uint w_unit_elem(uint u, uint k) { return u * 8u + k; }

#elif defined(W_Q4_0)
layout(binding = 0) readonly buffer WeightBuf { uint16_t w_data[]; };
#define W_BLOCK_WORDS 9u
// Unit u & 3 = j takes bytes qs[4j .. 4j+3]: elements 4j .. 4j+3 (low nibbles) and
// 16+4j .. 16+4j+3 (high nibbles).
void w_unit(uint base, uint u, out float q[8], out float d) {
    const uint b = base + (u >> 2) * W_BLOCK_WORDS;
    d = unpackHalf2x16(uint(w_data[b])).x;
    const uint qi = b + 1u + (u & 3u) * 2u;
    const uint bytes = uint(w_data[qi]) | (uint(w_data[qi + 1u]) << 16);
    [[unroll]] for (uint j = 0; j < 4; ++j) {
        q[j] = float(int(bitfieldExtract(bytes, int(8 * j), 4)) - 8);
        q[4 + j] = float(int(bitfieldExtract(bytes, int(8 * j + 4), 4)) - 8);
    }
}
uint w_unit_elem(uint u, uint k) { return (u >> 2) * 32u + (u & 3u) * 4u + (k < 4u ? k : k + 12u); }

#else
#error "no weight type defined"
#endif
