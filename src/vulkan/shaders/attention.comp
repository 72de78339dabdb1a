#version 450
// Attention over a layer's paged KV storage (cpu::attention's arithmetic: scores q.k * scale,
// softmax over the token's cache positions [0, pos], the weighted sum of V), one workgroup per
// (token, query head); query head h reads KV head h / n_rep (grouped-query attention). The
// positions go through in chunks of WG: each thread forms one score, then the chunk's maximum
// rescales the running sums (an online softmax, as the CPU's per block), and each thread adds
// the chunk's weighted V rows into its own output dimensions (d = tid, tid + WG, ...).
// The head sizes are specialization constants' bounds: hd_v <= WG * DPT, hd_k <= QMAX (the host
// picks DPT = 4, QMAX = 256 for heads up to 256 values, more for MLA's 576 / 512).
//   q: [n_tok][n_head][hd_k] F32 at q_off; out: [n_tok][n_head][hd_v] F32 at out_off
//   meta (int32, binding 4): token t: meta[2t] = its position, meta[2t + 1] = where its block table
//   starts in meta; the table lists cache blocks (slot = block * block_size + pos % block_size)
//   K: row of slot s at s * k_dim, head g at g * hd_k; V likewise with v_dim (V in K, as for MLA:
//   v_dim = k_dim, head offset 0)
//
// variant: attention_f32 -DKV_F32
// variant: attention_f16 -DKV_F16
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;      // a power of two
layout(constant_id = 1) const uint DPT = 4;      // output dimensions per thread: hd_v <= WG * DPT
layout(constant_id = 2) const uint QMAX = 256;   // the query's shared copy: hd_k <= QMAX

layout(binding = 0) readonly buffer QBuf { float q[]; };
#if defined(KV_F16)
layout(binding = 1) readonly buffer KBuf { float16_t kc[]; };
layout(binding = 2) readonly buffer VBuf { float16_t vc[]; };
#else
layout(binding = 1) readonly buffer KBuf { float kc[]; };
layout(binding = 2) readonly buffer VBuf { float vc[]; };
#endif
layout(binding = 3) writeonly buffer OBuf { float o[]; };
layout(binding = 4) readonly buffer MetaBuf { int meta[]; };

layout(push_constant) uniform Push {
    uint n_tok;
    uint n_head;
    uint n_rep;
    uint hd_k;
    uint hd_v;
    uint k_dim;      // values per cache row of K
    uint v_dim;      // ... of V
    uint v_head;     // 1: V heads at g * hd_v; 0: V in K (head offset 0)
    uint block_size;
    uint q_off;
    uint k_off;
    uint v_off;
    uint out_off;
    uint meta_off;
    float scale;
} p;

shared float qs[QMAX];
shared float sc[WG];
shared float red[WG];
shared uint slot_of[WG];

void main() {
    const uint item = group_linear();
    if (item >= p.n_tok * p.n_head) return;
    const uint tid = gl_LocalInvocationID.x;
    const uint t = item / p.n_head, h = item % p.n_head, g = h / p.n_rep;
    const uint n_kv = uint(meta[p.meta_off + 2u * t]) + 1u;
    const uint table = p.meta_off + uint(meta[p.meta_off + 2u * t + 1u]);

    const uint qb = p.q_off + item * p.hd_k;
    for (uint i = tid; i < p.hd_k; i += WG) qs[i] = q[qb + i];
    const uint kh = p.k_off + g * p.hd_k;
    const uint vh = p.v_off + g * p.hd_v * p.v_head;

    float m = -1.0 / 0.0, l = 0.0;
    float acc[DPT];
    [[unroll]] for (uint i = 0; i < DPT; ++i) acc[i] = 0.0;
    barrier();

    for (uint c0 = 0; c0 < n_kv; c0 += WG) {
        const uint nc = min(WG, n_kv - c0);
        // One score per thread.
        float s = -1.0 / 0.0;
        if (tid < nc) {
            const uint pos = c0 + tid;
            const uint slot = uint(meta[table + pos / p.block_size]) * p.block_size + pos % p.block_size;
            slot_of[tid] = slot;
            const uint kb = kh + slot * p.k_dim;
            float d = 0.0;
            for (uint i = 0; i < p.hd_k; ++i) d = fma(qs[i], float(kc[kb + i]), d);
            s = d * p.scale;
        }
        red[tid] = s;
        barrier();
        [[unroll]] for (uint w = WG / 2; w > 0; w >>= 1) {
            if (tid < w) red[tid] = max(red[tid], red[tid + w]);
            barrier();
        }
        const float m_new = max(m, red[0]);
        const float corr = exp(m - m_new);
        sc[tid] = tid < nc ? exp(s - m_new) : 0.0;
        barrier();
        // The chunk's sum (the same order in every thread: a uniform value).
        float sum = 0.0;
        for (uint j = 0; j < nc; ++j) sum += sc[j];
        l = l * corr + sum;
        m = m_new;
        [[unroll]] for (uint i = 0; i < DPT; ++i) {
            const uint d = tid + i * WG;
            if (d < p.hd_v) {
                float a = acc[i] * corr;
                for (uint j = 0; j < nc; ++j) a = fma(sc[j], float(vc[vh + slot_of[j] * p.v_dim + d]), a);
                acc[i] = a;
            }
        }
        barrier();  // sc, slot_of and red are rewritten by the next chunk
    }
    const float inv = 1.0 / l;
    const uint ob = p.out_off + item * p.hd_v;
    [[unroll]] for (uint i = 0; i < DPT; ++i) {
        const uint d = tid + i * WG;
        if (d < p.hd_v) o[ob + d] = acc[i] * inv;
    }
}
