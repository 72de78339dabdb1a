#version 450
// Quantizes F32 activation columns to the 8-bit activation format of the integer products
// (ops_int8.h, mul_mvq.comp): blocks of 32 values with a float scale d = amax / 127 and
// q = roundEven(x / d) in [-127, 127] (an all-zero block: d = 0, q = 0), plus the sums of the
// block's two halves of 16 quants. A column of n_in values (nb = n_in / 32 blocks) is, in 32-bit
// words from its start:
//   [nb][8]  the quants: word 8b + i holds elements 32b + 4i .. 32b + 4i + 3, element 4i + k in
//            byte k (int8)
//   [nb][2]  at 8 nb + 2b: d (float bits); the sum of quants 0 .. 15 (low 16 bits, int16) and of
//            16 .. 31 (high 16 bits, int16)
// 10 words (40 bytes) per block. One thread per block.
//
//   x:  [n_cols][n_in] F32, column c at x_off + c * x_stride (floats)
//   xq: column c at q_off + c * q_stride (words)
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

layout(binding = 0) readonly buffer XBuf { float x[]; };
layout(binding = 1) writeonly buffer QBuf { uint xq[]; };

layout(push_constant) uniform Push {
    uint n_in;  // a multiple of 32
    uint n_cols;
    uint x_off;
    uint x_stride;
    uint q_off;
    uint q_stride;
} p;

void main() {
    const uint nb = p.n_in / 32u;
    const uint g = group_linear() * WG + gl_LocalInvocationID.x;
    if (g >= nb * p.n_cols) return;
    const uint c = g / nb, b = g % nb;
    const uint xb = p.x_off + c * p.x_stride + 32u * b;

    float v[32];
    float amax = 0.0;
    [[unroll]] for (uint j = 0; j < 32u; ++j) {
        v[j] = x[xb + j];
        amax = max(amax, abs(v[j]));
    }
    const float d = amax / 127.0;
    const float id = d != 0.0 ? 1.0 / d : 0.0;

    const uint qb = p.q_off + c * p.q_stride;
    int s0 = 0, s1 = 0;
    [[unroll]] for (uint i = 0; i < 8u; ++i) {
        uint word = 0u;
        [[unroll]] for (uint k = 0; k < 4u; ++k) {
            const int q = clamp(int(roundEven(v[4u * i + k] * id)), -127, 127);
            if (i < 4u) s0 += q; else s1 += q;
            word |= (uint(q) & 0xFFu) << (8u * k);
        }
        xq[qb + 8u * b + i] = word;
    }
    xq[qb + 8u * nb + 2u * b] = floatBitsToUint(d);
    xq[qb + 8u * nb + 2u * b + 1u] = (uint(s0) & 0xFFFFu) | (uint(s1) << 16);
}
