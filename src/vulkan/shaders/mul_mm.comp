#version 450
// y = W x for many activation columns (prefill): tiles of BM = 64 weight rows by BN = 64 columns,
// stepping through the row length BK = 32 elements (a 32-element block, or an eighth of a
// 256-element one) at a time. Each step the workgroup's 128 threads dequantize the weight tile and
// load the activation tile into shared memory, then every thread updates its 4 x 8 outputs (rows
// tx + 16 i, columns ty + 8 j, so that neighbouring threads read neighbouring shared words and
// write neighbouring rows of y).
//
//   W: [n_rows][ne0] of the weight type (binding 0, see weights.glsl), row r at w_off + r * w_stride
//   x: [n_cols][ne0] F32, column c at x_off + c * x_stride
//   y: [n_cols][...] F32, element (c, r) at y_off + c * y_stride + r
//
// Grid: (ceil(n_rows / BM), ceil(n_cols / BN)). Shared memory: 2 x 32 x 65 floats (16.25 KiB).
//
// variant: mul_mm_f32 -DW_F32
// variant: mul_mm_f16 -DW_F16
// variant: mul_mm_bf16 -DW_BF16
// variant: mul_mm_q8_0 -DW_Q8_0
// variant: mul_mm_q4_0 -DW_Q4_0
// variant: mul_mm_q4_1 -DW_Q4_1
// variant: mul_mm_q5_0 -DW_Q5_0
// variant: mul_mm_q5_1 -DW_Q5_1
// variant: mul_mm_iq4_nl -DW_IQ4_NL
// variant: mul_mm_q2_k -DW_Q2_K
// variant: mul_mm_q3_k -DW_Q3_K
// variant: mul_mm_q4_k -DW_Q4_K
// variant: mul_mm_q5_k -DW_Q5_K
// variant: mul_mm_q6_k -DW_Q6_K
// variant: mul_mm_iq4_xs -DW_IQ4_XS
#extension GL_EXT_control_flow_attributes : enable
#include "weights.glsl"

#define WG 128u
#define BM 64u
#define BN 64u
#define BK 32u
#define TM 4u   // rows per thread, BM / 16
#define TN 8u   // columns per thread, BN / 8

layout(local_size_x = 128) in;

layout(binding = 1) readonly buffer XBuf { float x[]; };
layout(binding = 2) writeonly buffer YBuf { float y[]; };

layout(push_constant) uniform Push {
    uint ne0;
    uint n_rows;
    uint n_cols;
    uint w_off;
    uint w_stride;
    uint x_off;
    uint x_stride;
    uint y_off;
    uint y_stride;
} p;

// [k][row] and [k][column], padded by one word so that the tile loads hit distinct banks.
shared float sa[BK][BM + 1];
shared float sb[BK][BN + 1];

void main() {
    const uint tid = gl_LocalInvocationID.x;
    const uint tx = tid % 16u, ty = tid / 16u;
    const uint row0 = gl_WorkGroupID.x * BM;
    const uint col0 = gl_WorkGroupID.y * BN;

    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; ++i)
        [[unroll]] for (uint j = 0; j < TN; ++j) acc[i][j] = 0.0;

    for (uint k0 = 0; k0 < p.ne0; k0 += BK) {
        // Weight tile: rows past the end read the last row (their outputs are not written).
#if defined(W_FLOAT)
        [[unroll]] for (uint s = 0; s < BM * BK / WG; ++s) {
            const uint e = tid + s * WG;
            const uint rr = e / BK, kk = e % BK;
            const uint row = min(row0 + rr, p.n_rows - 1);
            sa[kk][rr] = k0 + kk < p.ne0 ? w_load(p.w_off + row * p.w_stride + k0 + kk) : 0.0;
        }
#else
        // 64 rows x 4 units of 8 = 256 units, two per thread.
        [[unroll]] for (uint s = 0; s < BM * 4u / WG; ++s) {
            const uint e = tid + s * WG;
            const uint rr = e / 4u, j = e % 4u;
            const uint row = min(row0 + rr, p.n_rows - 1);
            const uint u = (k0 / 32u) * 4u + j;
            float v[8];
            w_unit(p.w_off + row * p.w_stride, u, v);
            [[unroll]] for (uint k = 0; k < 8; ++k) sa[w_unit_elem(u, k) - k0][rr] = v[k];
        }
#endif
        // Activation tile: columns past the end and elements past the row read as zero.
        [[unroll]] for (uint s = 0; s < BN * BK / WG; ++s) {
            const uint e = tid + s * WG;
            const uint cc = e / BK, kk = e % BK;
            const uint col = col0 + cc;
            sb[kk][cc] = col < p.n_cols && k0 + kk < p.ne0 ? x[p.x_off + col * p.x_stride + k0 + kk] : 0.0;
        }
        barrier();

        for (uint k = 0; k < BK; ++k) {
            float a[TM], b[TN];
            [[unroll]] for (uint i = 0; i < TM; ++i) a[i] = sa[k][tx + 16u * i];
            [[unroll]] for (uint j = 0; j < TN; ++j) b[j] = sb[k][ty + 8u * j];
            [[unroll]] for (uint i = 0; i < TM; ++i)
                [[unroll]] for (uint j = 0; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier();
    }

    [[unroll]] for (uint j = 0; j < TN; ++j) {
        const uint col = col0 + ty + 8u * j;
        if (col >= p.n_cols) continue;
        [[unroll]] for (uint i = 0; i < TM; ++i) {
            const uint row = row0 + tx + 16u * i;
            if (row < p.n_rows) y[p.y_off + col * p.y_stride + row] = acc[i][j];
        }
    }
}
