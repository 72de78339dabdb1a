#version 450
// y = W x for a few activation columns (decode): NCOLS columns (1 .. 8) per dispatch, NROWS rows
// of W per workgroup. The workgroup's threads split the row length; each thread keeps NROWS x NCOLS
// partial sums, added across the workgroup in shared memory at the end. Every weight element is
// read once per dispatch; the activation columns are reused across the NROWS rows.
//
//   W: [n_rows][ne0] of the weight type (binding 0, see weights.glsl), row r at w_off + r * w_stride
//   x: [n_cols][ne0] F32, column c at x_off + c * x_stride
//   y: [n_cols][...] F32, element (c, r) at y_off + c * y_stride + r
//
// variant: mul_mv_f32 -DW_F32
// variant: mul_mv_f16 -DW_F16
// variant: mul_mv_bf16 -DW_BF16
// variant: mul_mv_q8_0 -DW_Q8_0
// variant: mul_mv_q4_0 -DW_Q4_0
// variant: mul_mv_q4_1 -DW_Q4_1
// variant: mul_mv_q5_0 -DW_Q5_0
// variant: mul_mv_q5_1 -DW_Q5_1
// variant: mul_mv_iq4_nl -DW_IQ4_NL
// variant: mul_mv_q2_k -DW_Q2_K
// variant: mul_mv_q3_k -DW_Q3_K
// variant: mul_mv_q4_k -DW_Q4_K
// variant: mul_mv_q5_k -DW_Q5_K
// variant: mul_mv_q6_k -DW_Q6_K
// variant: mul_mv_iq4_xs -DW_IQ4_XS
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"
#include "weights.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;    // threads per workgroup (a power of two)
layout(constant_id = 1) const uint NCOLS = 1;  // activation columns
layout(constant_id = 2) const uint NROWS = 2;  // weight rows per workgroup

layout(binding = 1) readonly buffer XBuf { float x[]; };
layout(binding = 2) writeonly buffer YBuf { float y[]; };

layout(push_constant) uniform Push {
    uint ne0;       // row length (elements)
    uint n_rows;
    uint n_cols;    // == NCOLS
    uint w_off;
    uint w_stride;
    uint x_off;
    uint x_stride;
    uint y_off;
    uint y_stride;
} p;

shared float red[NROWS * NCOLS][WG];

void main() {
    const uint row0 = group_linear() * NROWS;
    if (row0 >= p.n_rows) return;
    const uint tid = gl_LocalInvocationID.x;

    float acc[NROWS * NCOLS];
    [[unroll]] for (uint i = 0; i < NROWS * NCOLS; ++i) acc[i] = 0.0;

    // Rows past the end (the last workgroup) read the last row again and are not written.
    uint wbase[NROWS];
    [[unroll]] for (uint r = 0; r < NROWS; ++r) wbase[r] = p.w_off + min(row0 + r, p.n_rows - 1) * p.w_stride;

#if defined(W_FLOAT)
    for (uint k = tid; k < p.ne0; k += WG) {
        float wv[NROWS];
        [[unroll]] for (uint r = 0; r < NROWS; ++r) wv[r] = w_load(wbase[r] + k);
        [[unroll]] for (uint c = 0; c < NCOLS; ++c) {
            const float xv = x[p.x_off + c * p.x_stride + k];
            [[unroll]] for (uint r = 0; r < NROWS; ++r) acc[r * NCOLS + c] = fma(wv[r], xv, acc[r * NCOLS + c]);
        }
    }
#else
    const uint n_units = p.ne0 / 8u;
    for (uint u = tid; u < n_units; u += WG) {
        // The unit's values are dequantized once per row and reused across the columns.
        float v[NROWS][8];
        [[unroll]] for (uint r = 0; r < NROWS; ++r) w_unit(wbase[r], u, v[r]);
        [[unroll]] for (uint c = 0; c < NCOLS; ++c) {
            const uint xb = p.x_off + c * p.x_stride;
            float xv[8];
            [[unroll]] for (uint k = 0; k < 8; ++k) xv[k] = x[xb + w_unit_elem(u, k)];
            [[unroll]] for (uint r = 0; r < NROWS; ++r) {
                float s = 0.0;
                [[unroll]] for (uint k = 0; k < 8; ++k) s = fma(v[r][k], xv[k], s);
                acc[r * NCOLS + c] += s;
            }
        }
    }
#endif

    [[unroll]] for (uint i = 0; i < NROWS * NCOLS; ++i) red[i][tid] = acc[i];
    barrier();
    [[unroll]] for (uint s = WG / 2; s > 0; s >>= 1) {
        if (tid < s) {
            [[unroll]] for (uint i = 0; i < NROWS * NCOLS; ++i) red[i][tid] += red[i][tid + s];
        }
        barrier();
    }
    for (uint i = tid; i < NROWS * NCOLS; i += WG) {
        const uint r = i / NCOLS, c = i % NCOLS;
        if (row0 + r < p.n_rows) y[p.y_off + c * p.y_stride + row0 + r] = red[i][0];
    }
}
