#version 450
// The chosen experts' products (vk::mul_mat_id) for one piece of a stacked expert weight (experts
// e0 .. e0 + n_experts - 1): for each (token, slot) pair of the dispatch whose expert lies in the
// piece, y[pair][r] = W[expert][r] · x_row. A workgroup takes NROWS rows of one pair (pair =
// group / row_groups); its threads split the row length as mul_mv.comp's do, with one column.
// Pairs whose expert is in another piece are left to that piece's dispatch.
//
//   W: binding 0 (weights.glsl); row r of expert e at w_off + ((e - e0) * n_out + r) * w_stride
//   ids: int32, pair q's expert at ids_off + q
//   x: pair q's row at x_off + (per_slot ? q : (q + slot0) / k) * ne0  (slot0: the first pair's
//      slot, so that (q + slot0) / k counts the tokens from the dispatch's first one)
//   y: pair q's row at y_off + q * n_out
//
// variant: moe_mul_mv_f32 -DW_F32
// variant: moe_mul_mv_f16 -DW_F16
// variant: moe_mul_mv_bf16 -DW_BF16
// variant: moe_mul_mv_q8_0 -DW_Q8_0
// variant: moe_mul_mv_q4_0 -DW_Q4_0
// variant: moe_mul_mv_q4_1 -DW_Q4_1
// variant: moe_mul_mv_q5_0 -DW_Q5_0
// variant: moe_mul_mv_q5_1 -DW_Q5_1
// variant: moe_mul_mv_iq4_nl -DW_IQ4_NL
// variant: moe_mul_mv_q2_k -DW_Q2_K
// variant: moe_mul_mv_q3_k -DW_Q3_K
// variant: moe_mul_mv_q4_k -DW_Q4_K
// variant: moe_mul_mv_q5_k -DW_Q5_K
// variant: moe_mul_mv_q6_k -DW_Q6_K
// variant: moe_mul_mv_iq4_xs -DW_IQ4_XS
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"
#include "weights.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;    // threads per workgroup (a power of two)
layout(constant_id = 1) const uint NROWS = 2;  // weight rows per workgroup

layout(binding = 1) readonly buffer IdBuf { int ids[]; };
layout(binding = 2) readonly buffer XBuf { float x[]; };
layout(binding = 3) writeonly buffer YBuf { float y[]; };

layout(push_constant) uniform Push {
    uint ne0;        // row length (elements)
    uint n_out;      // rows per expert
    uint n_pairs;    // (token, slot) pairs of this dispatch
    uint row_groups; // workgroups per pair: ceil(n_out / NROWS)
    uint e0;         // the piece's first expert
    uint n_experts;  // experts in the piece
    uint k;          // slots per token
    uint slot0;      // the first pair's slot
    uint per_slot;   // x holds a row per pair (else per token)
    uint w_off;
    uint w_stride;
    uint ids_off;
    uint x_off;
    uint y_off;
} p;

shared float red[NROWS][WG];

void main() {
    const uint g = group_linear();
    const uint q = g / p.row_groups;
    if (q >= p.n_pairs) return;
    const int id = ids[p.ids_off + q];
    if (id < int(p.e0) || id >= int(p.e0 + p.n_experts)) return;  // uniform in the workgroup
    const uint row0 = (g % p.row_groups) * NROWS;
    const uint tid = gl_LocalInvocationID.x;

    float acc[NROWS];
    [[unroll]] for (uint r = 0; r < NROWS; ++r) acc[r] = 0.0;

    // Rows past the end (the last workgroup of a pair) read the last row again and are not written.
    const uint ebase = p.w_off + (uint(id) - p.e0) * p.n_out * p.w_stride;
    uint wbase[NROWS];
    [[unroll]] for (uint r = 0; r < NROWS; ++r) wbase[r] = ebase + min(row0 + r, p.n_out - 1u) * p.w_stride;
    const uint xb = p.x_off + (p.per_slot != 0u ? q : (q + p.slot0) / p.k) * p.ne0;

#if defined(W_FLOAT)
    for (uint i = tid; i < p.ne0; i += WG) {
        const float xv = x[xb + i];
        [[unroll]] for (uint r = 0; r < NROWS; ++r) acc[r] = fma(w_load(wbase[r] + i), xv, acc[r]);
    }
#else
    const uint n_units = p.ne0 / 8u;
    for (uint u = tid; u < n_units; u += WG) {
        float xv[8];
        [[unroll]] for (uint j = 0; j < 8; ++j) xv[j] = x[xb + w_unit_elem(u, j)];
        [[unroll]] for (uint r = 0; r < NROWS; ++r) {
            float v[8];
            w_unit(wbase[r], u, v);
            float s = 0.0;
            [[unroll]] for (uint j = 0; j < 8; ++j) s = fma(v[j], xv[j], s);
            acc[r] += s;
        }
    }
#endif

    [[unroll]] for (uint r = 0; r < NROWS; ++r) red[r][tid] = acc[r];
    barrier();
    [[unroll]] for (uint s = WG / 2; s > 0; s >>= 1) {
        if (tid < s) {
            [[unroll]] for (uint r = 0; r < NROWS; ++r) red[r][tid] += red[r][tid + s];
        }
        barrier();
    }
    if (tid < NROWS && row0 + tid < p.n_out) y[p.y_off + q * p.n_out + row0 + tid] = red[tid][0];
}
