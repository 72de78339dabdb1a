#version 450
// RoPE with YaRN in place over x: [n_rows][n_heads][head_stride] F32, row t at position pos[t];
// the first n_rot values of each head are rotated in pairs (normal: (2j, 2j+1); NEOX:
// (j, j + n_rot/2)), the rest left as they are. One thread per pair.
//
// The angle is formed as cpu::rope forms it, in F32 with the same operations in the same order
// (so it is the CPU's float): theta_extrap = pos * theta_scale^j by j successive products,
// theta_interp = freq_scale * theta_extrap, and with YaRN (ext != 0) the ramp between them. The
// host passes the values the CPU computes once (theta_scale, the correction dims, mscale). cos and
// sin are this shader's own (Vulkan's are only good to 2^-11 absolute within [-pi, pi], and
// lavapipe's show it): the angle reduced by k pi/2 (exactly, see sincos_f32) to about [-pi/4, pi/4],
// Taylor polynomials there (truncation < 1e-11), a few F32 ulps in all.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;

layout(binding = 0) buffer XBuf { float x[]; };
layout(binding = 1) readonly buffer PosBuf { int pos[]; };

layout(push_constant) uniform Push {
    uint n_rows;
    uint n_heads;
    uint head_stride;
    uint n_rot;
    uint neox;
    uint x_off;
    uint pos_off;
    float theta_scale;
    float freq_scale;
    float ext_factor;   // 0: no YaRN
    float corr0;        // YaRN correction dims (low, high)
    float corr1;
    float mscale;       // attn_factor, times 1 + 0.1 ln(1 / freq_scale) with YaRN
} p;

// The exact product a b = p + e of two floats (Dekker: Veltkamp halves of 12 bits, whose
// products are exact; no FMA, which lavapipe does not fuse).
void two_prod(float a, float b, out float p, out float e) {
    precise float pp = a * b;
    precise float ca = 4097.0 * a, cb = 4097.0 * b;
    precise float ah = ca - (ca - a), bh = cb - (cb - b);
    precise float al = a - ah, bl = b - bh;
    precise float ee = ((ah * bh - pp) + ah * bl + al * bh) + al * bl;
    p = pp;
    e = ee;
}

// a / b to within an ulp, nearly always correctly rounded as the CPU rounds it (Vulkan's division
// may be 2.5 ulp off): one correction by the exact remainder.
float div_f32(float a, float b) {
    const float q0 = a / b;
    float p, e;
    two_prod(q0, b, p, e);
    precise float rem = (a - p) - e;
    precise float q = q0 + rem / b;
    return q;
}

// sin and cos of a: r = a - k pi/2 with pi/2 = C1 + C2 (C1 the float nearest to it) and k C1
// formed exactly (a - k C1 is then exact: within a factor of 2 of each other), then the quadrant
// k mod 4.
void sincos_f32(float a, out float sn, out float cs) {
    const float k = roundEven(a * 0.6366197723675814);
    float p, e;
    two_prod(k, 1.5707963705062866, p, e);
    precise float r = (a - p) - e;
    r = r - k * -4.371138828673793e-08;
    const precise float r2 = r * r;
    // Taylor polynomials in r^2 (Horner): the coefficients are +-1 / n!.
    precise float ps = -1.0 / 39916800.0;
    ps = ps * r2 + 1.0 / 362880.0;
    ps = ps * r2 - 1.0 / 5040.0;
    ps = ps * r2 + 1.0 / 120.0;
    ps = ps * r2 - 1.0 / 6.0;
    const precise float s = r + r * r2 * ps;
    precise float pc = 1.0 / 479001600.0;
    pc = pc * r2 - 1.0 / 3628800.0;
    pc = pc * r2 + 1.0 / 40320.0;
    pc = pc * r2 - 1.0 / 720.0;
    pc = pc * r2 + 1.0 / 24.0;
    pc = pc * r2 - 0.5;
    const precise float c = 1.0 + r2 * pc;
    const int q = int(k) & 3;
    sn = q == 0 ? s : q == 1 ? c : q == 2 ? -s : -c;
    cs = q == 0 ? c : q == 1 ? -s : q == 2 ? -c : s;
}

void main() {
    const uint half_rot = p.n_rot / 2u;
    const uint idx = group_linear() * WG + gl_LocalInvocationID.x;
    if (idx >= p.n_rows * p.n_heads * half_rot) return;
    const uint j = idx % half_rot;
    const uint rh = idx / half_rot;  // row * n_heads + head
    const uint row = rh / p.n_heads;

    precise float theta_extrap = float(pos[p.pos_off + row]);
    for (uint k = 0; k < j; ++k) theta_extrap = theta_extrap * p.theta_scale;
    precise float theta = p.freq_scale * theta_extrap;
    if (p.ext_factor != 0.0) {
        const precise float y = div_f32(float(j) - p.corr0, max(0.001, p.corr1 - p.corr0));
        const precise float ramp_mix = (1.0 - min(1.0, max(0.0, y))) * p.ext_factor;
        theta = theta * (1.0 - ramp_mix) + theta_extrap * ramp_mix;
    }
    float sn, cs;
    sincos_f32(theta, sn, cs);
    const float c = cs * p.mscale, s = sn * p.mscale;

    const uint base = p.x_off + rh * p.head_stride;
    const uint a = base + (p.neox != 0u ? j : 2u * j);
    const uint b = base + (p.neox != 0u ? j + half_rot : 2u * j + 1u);
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
}
