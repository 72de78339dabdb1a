#version 450
// The weighted sum of the chosen experts' outputs (vk::moe_combine), one thread per output value:
//   out[t][i] = (accumulate ? out[t][i] : 0) + sum_j weights[t][j] * y[t][j][i],
// one fma per slot, j = 0 .. k-1 in order.
//   y: [n_tok][k][n] at y_off; weights: [n_tok][k] at w_off; out: [n_tok][n] at out_off
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;

layout(binding = 0) readonly buffer YBuf { float y[]; };
layout(binding = 1) readonly buffer WBuf { float wts[]; };
layout(binding = 2) buffer OBuf { float o[]; };

layout(push_constant) uniform Push {
    uint n;
    uint n_tok;
    uint k;
    uint accumulate;
    uint y_off;
    uint w_off;
    uint out_off;
} p;

void main() {
    const uint idx = group_linear() * WG + gl_LocalInvocationID.x;
    const uint t = idx / p.n, i = idx % p.n;
    if (t >= p.n_tok) return;
    float acc = p.accumulate != 0u ? o[p.out_off + idx] : 0.0;
    const uint yb = p.y_off + t * p.k * p.n + i;
    for (uint j = 0; j < p.k; ++j) acc = fma(wts[p.w_off + t * p.k + j], y[yb + j * p.n], acc);
    o[p.out_off + idx] = acc;
}
