#version 450
// A strided copy of F32 rows: for i0 < n0, i1 < n1, e < len
//   dst[dst_off + i0 * dst_s0 + i1 * dst_s1 + e] = src[src_off + i0 * src_s0 + i1 * src_s1 + e]
// (gathering heads out of a row-major activation, scattering them back). One thread per element,
// e fastest, so that neighbouring threads read and write neighbouring words.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;

layout(binding = 0) readonly buffer SBuf { float src[]; };
layout(binding = 1) writeonly buffer DBuf { float dst[]; };

layout(push_constant) uniform Push {
    uint n0;
    uint n1;
    uint len;
    uint src_off;
    uint src_s0;
    uint src_s1;
    uint dst_off;
    uint dst_s0;
    uint dst_s1;
} p;

void main() {
    const uint i = group_linear() * WG + gl_LocalInvocationID.x;
    if (i >= p.n0 * p.n1 * p.len) return;
    const uint e = i % p.len, r = i / p.len;
    const uint i1 = r % p.n1, i0 = r / p.n1;
    dst[p.dst_off + i0 * p.dst_s0 + i1 * p.dst_s1 + e] = src[p.src_off + i0 * p.src_s0 + i1 * p.src_s1 + e];
}
