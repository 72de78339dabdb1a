#version 450
// out = x / rms(x) * weight, one workgroup per row of n:
//   rms = sqrt(mean(x^2) + eps), computed as 1 / sqrt(...) in F32 as the CPU does.
//   x: row r at x_off + r * x_stride; out: row r at out_off + r * out_stride; weight: n floats at w_off.
// The sum of squares is formed by the workgroup in F32 (per-thread strided sums, then a tree).
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;  // a power of two

layout(binding = 0) readonly buffer XBuf { float x[]; };
layout(binding = 1) readonly buffer WBuf { float w[]; };
layout(binding = 2) writeonly buffer OBuf { float o[]; };

layout(push_constant) uniform Push {
    uint n;
    uint n_rows;
    uint x_off;
    uint x_stride;
    uint w_off;
    uint out_off;
    uint out_stride;
    float eps;
} p;

shared float red[WG];

void main() {
    const uint row = group_linear();
    if (row >= p.n_rows) return;
    const uint tid = gl_LocalInvocationID.x;
    const uint xb = p.x_off + row * p.x_stride;

    float s = 0.0;
    for (uint i = tid; i < p.n; i += WG) {
        const float v = x[xb + i];
        s = fma(v, v, s);
    }
    red[tid] = s;
    barrier();
    [[unroll]] for (uint h = WG / 2; h > 0; h >>= 1) {
        if (tid < h) red[tid] += red[tid + h];
        barrier();
    }
    const float scale = 1.0 / sqrt(red[0] / float(p.n) + p.eps);

    const uint ob = p.out_off + row * p.out_stride;
    for (uint i = tid; i < p.n; i += WG) o[ob + i] = x[xb + i] * scale * w[p.w_off + i];
}
