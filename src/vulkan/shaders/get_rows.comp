#version 450
// Embedding lookup: out row t = row ids[t] of W as F32, for the tokens whose id lies in this piece
// of W (rows row0 .. row0 + n_rows - 1; the others are left to the dispatches of other pieces).
// One workgroup per token; the values are weights.glsl's dequantization (the reference's floats).
//   W: binding 0 (weights.glsl), row r - row0 at w_off + (r - row0) * w_stride
//   ids: int32 [n_tok] at ids_off; out: [n_tok][ne0] F32 at out_off
//
// variant: get_rows_f32 -DW_F32
// variant: get_rows_f16 -DW_F16
// variant: get_rows_bf16 -DW_BF16
// variant: get_rows_q8_0 -DW_Q8_0
// variant: get_rows_q4_0 -DW_Q4_0
// variant: get_rows_q4_1 -DW_Q4_1
// variant: get_rows_q5_0 -DW_Q5_0
// variant: get_rows_q5_1 -DW_Q5_1
// variant: get_rows_iq4_nl -DW_IQ4_NL
// variant: get_rows_q2_k -DW_Q2_K
// variant: get_rows_q3_k -DW_Q3_K
// variant: get_rows_q4_k -DW_Q4_K
// variant: get_rows_q5_k -DW_Q5_K
// variant: get_rows_q6_k -DW_Q6_K
// variant: get_rows_iq4_xs -DW_IQ4_XS
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"
#include "weights.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

layout(binding = 1) readonly buffer IdBuf { int ids[]; };
layout(binding = 2) writeonly buffer OBuf { float o[]; };

layout(push_constant) uniform Push {
    uint ne0;
    uint n_tok;
    uint row0;
    uint n_rows;
    uint w_off;
    uint w_stride;
    uint ids_off;
    uint out_off;
} p;

void main() {
    const uint t = group_linear();
    if (t >= p.n_tok) return;
    const int id = ids[p.ids_off + t];
    if (id < int(p.row0) || id >= int(p.row0 + p.n_rows)) return;
    const uint base = p.w_off + (uint(id) - p.row0) * p.w_stride;
    const uint ob = p.out_off + t * p.ne0;
#if defined(W_FLOAT)
    for (uint i = gl_LocalInvocationID.x; i < p.ne0; i += WG) o[ob + i] = w_load(base + i);
#else
    for (uint u = gl_LocalInvocationID.x; u < p.ne0 / 8u; u += WG) {
        float v[8];
        w_unit(base, u, v);
        [[unroll]] for (uint k = 0; k < 8; ++k) o[ob + w_unit_elem(u, k)] = v[k];
    }
#endif
}
