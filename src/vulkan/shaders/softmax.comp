#version 450
// out[r] = softmax(x[r]) for n_rows rows of n floats (as cpu::softmax: exp(x - max), divided by
// the sum), one workgroup per row; the maximum and the F32 sum are formed by the workgroup.
//   x: row r at x_off + r * n; out: row r at out_off + r * n (out may be x).
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;  // a power of two

layout(binding = 0) readonly buffer XBuf { float x[]; };
layout(binding = 1) buffer OBuf { float o[]; };

layout(push_constant) uniform Push {
    uint n;
    uint n_rows;
    uint x_off;
    uint out_off;
} p;

shared float red[WG];

void main() {
    const uint row = group_linear();
    if (row >= p.n_rows) return;
    const uint tid = gl_LocalInvocationID.x;
    const uint xb = p.x_off + row * p.n, ob = p.out_off + row * p.n;

    float m = -1.0 / 0.0;
    for (uint i = tid; i < p.n; i += WG) m = max(m, x[xb + i]);
    red[tid] = m;
    barrier();
    [[unroll]] for (uint h = WG / 2; h > 0; h >>= 1) {
        if (tid < h) red[tid] = max(red[tid], red[tid + h]);
        barrier();
    }
    const float mx = red[0];
    barrier();

    float s = 0.0;
    for (uint i = tid; i < p.n; i += WG) s += exp(x[xb + i] - mx);
    red[tid] = s;
    barrier();
    [[unroll]] for (uint h = WG / 2; h > 0; h >>= 1) {
        if (tid < h) red[tid] += red[tid + h];
        barrier();
    }
    const float inv = 1.0 / red[0];
    // Each thread reads x[i] before writing o[i] of the same i (in place is safe).
    for (uint i = tid; i < p.n; i += WG) o[ob + i] = exp(x[xb + i] - mx) * inv;
}
