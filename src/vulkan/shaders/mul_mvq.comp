#version 450
// y = W x with a quantized W and 8-bit activations (ops_int8.h): NCOLS columns (1 .. 8) per
// dispatch, NROWS rows of W per workgroup, as mul_mv.comp. Each thread takes 32-element blocks of
// the row (the activation's blocks) in turn: the weight block's integers (mul_mvq_weights.glsl) are
// multiplied with the activation's int8 quants in 4-way integer dot products, per half of 16, then
// scaled:  acc += dx * (D * (sc.x dot_lo + sc.y dot_hi) + M * (mn.x s_lo + mn.y s_hi)).
// The partial sums are added across the workgroup in shared memory.
//
// The dot products: with INT8_DOT (the _dot variants, for devices with the integer dot product
// feature) OpSDot on packed 4x8-bit vectors, the instruction GL_EXT_integer_dot_product's
// dotPacked4x8EXT compiles to, declared here through GL_EXT_spirv_intrinsics (the glslang of
// Debian 12 predates GL_EXT_integer_dot_product); without it the same sum of four int32 products
// of the sign-extended bytes. Nothing else differs between the variants.
//
//   W:  [n_rows][ne0] of the weight type (binding 0, weights.glsl), row r at w_off + r * w_stride
//   xq: [n_cols] activation columns (quantize_q8.comp), column c at x_off + c * x_stride (words)
//   y:  [n_cols][...] F32, element (c, r) at y_off + c * y_stride + r
//
// variant: mul_mvq_q8_0 -DW_Q8_0
// variant: mul_mvq_q4_0 -DW_Q4_0
// variant: mul_mvq_q4_1 -DW_Q4_1
// variant: mul_mvq_q5_0 -DW_Q5_0
// variant: mul_mvq_q5_1 -DW_Q5_1
// variant: mul_mvq_iq4_nl -DW_IQ4_NL
// variant: mul_mvq_q2_k -DW_Q2_K
// variant: mul_mvq_q3_k -DW_Q3_K
// variant: mul_mvq_q4_k -DW_Q4_K
// variant: mul_mvq_q5_k -DW_Q5_K
// variant: mul_mvq_q6_k -DW_Q6_K
// variant: mul_mvq_iq4_xs -DW_IQ4_XS
// variant: mul_mvq_q8_0_dot -DW_Q8_0 -DINT8_DOT
// variant: mul_mvq_q4_0_dot -DW_Q4_0 -DINT8_DOT
// variant: mul_mvq_q4_1_dot -DW_Q4_1 -DINT8_DOT
// variant: mul_mvq_q5_0_dot -DW_Q5_0 -DINT8_DOT
// variant: mul_mvq_q5_1_dot -DW_Q5_1 -DINT8_DOT
// variant: mul_mvq_iq4_nl_dot -DW_IQ4_NL -DINT8_DOT
// variant: mul_mvq_q2_k_dot -DW_Q2_K -DINT8_DOT
// variant: mul_mvq_q3_k_dot -DW_Q3_K -DINT8_DOT
// variant: mul_mvq_q4_k_dot -DW_Q4_K -DINT8_DOT
// variant: mul_mvq_q5_k_dot -DW_Q5_K -DINT8_DOT
// variant: mul_mvq_q6_k_dot -DW_Q6_K -DINT8_DOT
// variant: mul_mvq_iq4_xs_dot -DW_IQ4_XS -DINT8_DOT
#extension GL_EXT_control_flow_attributes : enable
#if defined(INT8_DOT)
#extension GL_EXT_spirv_intrinsics : require
#endif
#include "common.glsl"
#include "weights.glsl"
#include "mul_mvq_weights.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;    // threads per workgroup (a power of two)
layout(constant_id = 1) const uint NCOLS = 1;  // activation columns
layout(constant_id = 2) const uint NROWS = 2;  // weight rows per workgroup

layout(binding = 1) readonly buffer XBuf { uint xq[]; };
layout(binding = 2) writeonly buffer YBuf { float y[]; };

layout(push_constant) uniform Push {
    uint ne0;       // row length (elements, a multiple of 32)
    uint n_rows;
    uint n_cols;    // == NCOLS
    uint w_off;
    uint w_stride;
    uint x_off;
    uint x_stride;
    uint y_off;
    uint y_stride;
} p;

#if defined(INT8_DOT)
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6018, 6019], id = 4450)
int spv_sdot(uint a, uint b, spirv_literal int packed_format);  // OpSDot, PackedVectorFormat4x8Bit
int dot4(uint a, uint b) { return spv_sdot(a, b, 0); }
#else
int dot4(uint a, uint b) {
    const ivec4 va = ivec4(bitfieldExtract(int(a), 0, 8), bitfieldExtract(int(a), 8, 8),
                           bitfieldExtract(int(a), 16, 8), bitfieldExtract(int(a), 24, 8));
    const ivec4 vb = ivec4(bitfieldExtract(int(b), 0, 8), bitfieldExtract(int(b), 8, 8),
                           bitfieldExtract(int(b), 16, 8), bitfieldExtract(int(b), 24, 8));
    return va.x * vb.x + va.y * vb.y + va.z * vb.z + va.w * vb.w;
}
#endif

shared float red[NROWS * NCOLS][WG];

void main() {
#if defined(W_Q_INIT)
    wq_init();  // the weight type's shared tables
    barrier();
#endif
    const uint row0 = group_linear() * NROWS;
    if (row0 >= p.n_rows) return;
    const uint tid = gl_LocalInvocationID.x;
    const uint nb = p.ne0 / 32u;

    float acc[NROWS * NCOLS];
    [[unroll]] for (uint i = 0; i < NROWS * NCOLS; ++i) acc[i] = 0.0;

    // Rows past the end (the last workgroup) read the last row again and are not written.
    uint wbase[NROWS];
    [[unroll]] for (uint r = 0; r < NROWS; ++r) wbase[r] = p.w_off + min(row0 + r, p.n_rows - 1) * p.w_stride;

    for (uint blk = tid; blk < nb; blk += WG) {
        // The weight block is unpacked once per row and reused across the columns.
        uint q[NROWS][8];
        ivec2 sc[NROWS], mn[NROWS];
        float D[NROWS], M[NROWS];
        [[unroll]] for (uint r = 0; r < NROWS; ++r) wq_block(wbase[r], blk, q[r], sc[r], mn[r], D[r], M[r]);
        [[unroll]] for (uint c = 0; c < NCOLS; ++c) {
            const uint xb = p.x_off + c * p.x_stride;
            uint a[8];
            [[unroll]] for (uint i = 0; i < 8u; ++i) a[i] = xq[xb + 8u * blk + i];
            const float dx = uintBitsToFloat(xq[xb + 8u * nb + 2u * blk]);
#if defined(W_Q_MIN)
            const int sums = int(xq[xb + 8u * nb + 2u * blk + 1u]);
            const ivec2 s = ivec2(bitfieldExtract(sums, 0, 16), bitfieldExtract(sums, 16, 16));
#endif
            [[unroll]] for (uint r = 0; r < NROWS; ++r) {
                int lo = 0, hi = 0;
                [[unroll]] for (uint i = 0; i < 4u; ++i) {
                    lo += dot4(q[r][i], a[i]);
                    hi += dot4(q[r][4u + i], a[4u + i]);
                }
                float t = D[r] * float(sc[r].x * lo + sc[r].y * hi);
#if defined(W_Q_MIN)
                t += M[r] * float(mn[r].x * s.x + mn[r].y * s.y);
#endif
                acc[r * NCOLS + c] = fma(dx, t, acc[r * NCOLS + c]);
            }
        }
    }

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
