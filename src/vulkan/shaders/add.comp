#version 450
// out[i] = a[i] + b[j], i < n, where j = i when b_n == 0 and (i + b_phase) % b_n otherwise
// (a row of b_n added to every row: a bias). out may be a or b (in place).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;

layout(binding = 0) readonly buffer ABuf { float a[]; };
layout(binding = 1) readonly buffer BBuf { float b[]; };
layout(binding = 2) writeonly buffer OBuf { float o[]; };

layout(push_constant) uniform Push {
    uint n;
    uint a_off;
    uint b_off;
    uint out_off;
    uint b_n;
    uint b_phase;
} p;

void main() {
    const uint i = group_linear() * WG + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    const uint j = p.b_n == 0 ? i : (i + p.b_phase) % p.b_n;
    o[p.out_off + i] = a[p.a_off + i] + b[p.b_off + j];
}
