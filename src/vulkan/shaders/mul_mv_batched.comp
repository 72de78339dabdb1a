#version 450
// Batched y = W x over n_mats row blocks of one weight matrix (per-head weights stacked by rows:
// DeepSeek's absorbed query, the value half of wkv_b): for mat m, column c < NCOLS (1 .. 8) and
// r < rows,
//   y[m][c][r] = sum_k W[rel0 + m * mat_stride + r][k] * x[m][c][k]
// where W's rows are counted from the start of the bound piece (rel0 may be negative: a mat whose
// first rows lie in an earlier piece); rows outside [0, piece_rows) are left to the dispatches of
// the other pieces. One workgroup per NROWS rows of one mat, the workgroups of a mat after one
// another (group = m * ceil(rows / NROWS) + row group); within it, mul_mv.comp's scheme: the
// threads split the row length, NROWS x NCOLS partial sums added in shared memory at the end.
//
//   W: binding 0 (weights.glsl), piece row i at w_off + i * w_stride
//   x: F32, (m, c) at x_off + m * x_mat + c * x_col
//   y: F32, (m, c, r) at y_off + m * y_mat + c * y_col + r
//
// variant: mul_mv_batched_f32 -DW_F32
// variant: mul_mv_batched_f16 -DW_F16
// variant: mul_mv_batched_bf16 -DW_BF16
// variant: mul_mv_batched_q8_0 -DW_Q8_0
// variant: mul_mv_batched_q4_0 -DW_Q4_0
// variant: mul_mv_batched_q4_1 -DW_Q4_1
// variant: mul_mv_batched_q5_0 -DW_Q5_0
// variant: mul_mv_batched_q5_1 -DW_Q5_1
// variant: mul_mv_batched_iq4_nl -DW_IQ4_NL
// variant: mul_mv_batched_q2_k -DW_Q2_K
// variant: mul_mv_batched_q3_k -DW_Q3_K
// variant: mul_mv_batched_q4_k -DW_Q4_K
// variant: mul_mv_batched_q5_k -DW_Q5_K
// variant: mul_mv_batched_q6_k -DW_Q6_K
// variant: mul_mv_batched_iq4_xs -DW_IQ4_XS
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
    uint ne0;         // row length (elements)
    uint rows;        // rows per mat
    uint n_mats;
    int rel0;         // piece row of mat 0's row 0
    uint mat_stride;  // rows from one mat to the next
    uint piece_rows;
    uint w_off;
    uint w_stride;
    uint x_off;
    uint x_mat;
    uint x_col;
    uint y_off;
    uint y_mat;
    uint y_col;
} p;

shared float red[NROWS * NCOLS][WG];

void main() {
    const uint groups_per_mat = (p.rows + NROWS - 1) / NROWS;
    const uint g = group_linear();
    if (g >= p.n_mats * groups_per_mat) return;
    const uint m = g / groups_per_mat, r0 = (g % groups_per_mat) * NROWS;
    const uint tid = gl_LocalInvocationID.x;

    // The rows of this workgroup in the piece; those outside it (or past the mat's end) read a
    // row of the piece and are not written.
    const int first = p.rel0 + int(m * p.mat_stride + r0);
    bool valid[NROWS];
    bool any = false;
    uint wbase[NROWS];
    [[unroll]] for (uint r = 0; r < NROWS; ++r) {
        const int lr = first + int(r);
        valid[r] = r0 + r < p.rows && lr >= 0 && lr < int(p.piece_rows);
        any = any || valid[r];
        wbase[r] = p.w_off + uint(clamp(lr, 0, int(p.piece_rows) - 1)) * p.w_stride;
    }
    if (!any) return;  // uniform: the same for every thread of the workgroup

    float acc[NROWS * NCOLS];
    [[unroll]] for (uint i = 0; i < NROWS * NCOLS; ++i) acc[i] = 0.0;
    const uint xm = p.x_off + m * p.x_mat;

#if defined(W_FLOAT)
    for (uint k = tid; k < p.ne0; k += WG) {
        float wv[NROWS];
        [[unroll]] for (uint r = 0; r < NROWS; ++r) wv[r] = w_load(wbase[r] + k);
        [[unroll]] for (uint c = 0; c < NCOLS; ++c) {
            const float xv = x[xm + c * p.x_col + k];
            [[unroll]] for (uint r = 0; r < NROWS; ++r) acc[r * NCOLS + c] = fma(wv[r], xv, acc[r * NCOLS + c]);
        }
    }
#else
    const uint n_units = p.ne0 / 8u;
    for (uint u = tid; u < n_units; u += WG) {
        float v[NROWS][8];
        [[unroll]] for (uint r = 0; r < NROWS; ++r) w_unit(wbase[r], u, v[r]);
        [[unroll]] for (uint c = 0; c < NCOLS; ++c) {
            const uint xb = xm + c * p.x_col;
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
    const uint ym = p.y_off + m * p.y_mat + r0;
    for (uint i = tid; i < NROWS * NCOLS; i += WG) {
        const uint r = i / NCOLS, c = i % NCOLS;
        if (valid[r]) y[ym + c * p.y_col + r] = red[i][0];
    }
}
