#version 450
// out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i]   (SwiGLU), i < n.
// out may be gate itself (in place).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;

layout(binding = 0) readonly buffer GBuf { float g[]; };
layout(binding = 1) readonly buffer UBuf { float u[]; };
layout(binding = 2) writeonly buffer OBuf { float o[]; };

layout(push_constant) uniform Push {
    uint n;
    uint g_off;
    uint u_off;
    uint out_off;
} p;

void main() {
    const uint i = group_linear() * WG + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    const float v = g[p.g_off + i];
    o[p.out_off + i] = v / (1.0 + exp(-v)) * u[p.u_off + i];
}
