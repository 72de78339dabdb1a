#version 450
// Expert selection (vk::route, model::route_experts' arithmetic), one workgroup per token:
//   1. scores: softmax of the token's logits (exp(l - max) times 1 / F32 sum) or sigmoid;
//   2. selection scores sel = score + bias;
//   3. with groups: each group's score is the sum of its two best sel (its best with one expert);
//      a group ranks by (score descending, index ascending); the experts of groups ranked
//      n_groups_used or later get sel = -inf;
//   4. expert e's rank is the number of experts f with sel[f] > sel[e], or sel[f] == sel[e] and
//      f < e (a total order: the host's partial_sort with ties to the lower index); rank r < k
//      goes to slot r;
//   5. weights: the slots' scores, divided by their sum taken in slot order when renorm, times
//      scale.
//   logits: row t at logits_off + t * n_expert; bias: [n_expert] at bias_off (has_bias);
//   ids (int32) and weights: row t at ids_off / w_off + t * k.
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;  // a power of two

const uint MAX_EXPERT = 1024;
const uint MAX_K = 64;

layout(binding = 0) readonly buffer LBuf { float logits[]; };
layout(binding = 1) readonly buffer BBuf { float bias[]; };
layout(binding = 2) writeonly buffer IBuf { int ids[]; };
layout(binding = 3) writeonly buffer WBuf { float wts[]; };

layout(push_constant) uniform Push {
    uint n_tok;
    uint n_expert;
    uint k;
    uint sigmoid;
    uint renorm;
    uint has_bias;
    uint n_groups;       // > 1 when the group-limited choice applies (else 0)
    uint n_groups_used;
    uint logits_off;
    uint bias_off;
    uint ids_off;
    uint w_off;
    float scale;
} p;

shared float prob[MAX_EXPERT];
shared float sel[MAX_EXPERT];
shared float red[MAX_EXPERT];  // reductions, then the group scores
shared uint chosen[MAX_K];
shared float wsum;

void main() {
    const uint t = group_linear();
    if (t >= p.n_tok) return;
    const uint tid = gl_LocalInvocationID.x;
    const uint n = p.n_expert;
    const uint lb = p.logits_off + t * n;

    if (p.sigmoid != 0u) {
        for (uint e = tid; e < n; e += WG) prob[e] = 1.0 / (1.0 + exp(-logits[lb + e]));
    } else {
        float m = -1.0 / 0.0;
        for (uint e = tid; e < n; e += WG) m = max(m, logits[lb + e]);
        red[tid] = m;
        barrier();
        [[unroll]] for (uint h = WG / 2; h > 0; h >>= 1) {
            if (tid < h) red[tid] = max(red[tid], red[tid + h]);
            barrier();
        }
        const float mx = red[0];
        barrier();
        float s = 0.0;
        for (uint e = tid; e < n; e += WG) {
            const float v = exp(logits[lb + e] - mx);
            prob[e] = v;
            s += v;
        }
        red[tid] = s;
        barrier();
        [[unroll]] for (uint h = WG / 2; h > 0; h >>= 1) {
            if (tid < h) red[tid] += red[tid + h];
            barrier();
        }
        const float inv = 1.0 / red[0];
        barrier();
        for (uint e = tid; e < n; e += WG) prob[e] *= inv;
    }
    for (uint e = tid; e < n; e += WG) sel[e] = prob[e] + (p.has_bias != 0u ? bias[p.bias_off + e] : 0.0);
    barrier();

    if (p.n_groups > 1u) {
        const uint per = n / p.n_groups;
        for (uint g = tid; g < p.n_groups; g += WG) {
            float b0 = -1.0 / 0.0, b1 = -1.0 / 0.0;
            for (uint e = g * per; e < (g + 1u) * per; ++e) {
                const float v = sel[e];
                if (v > b0) {
                    b1 = b0;
                    b0 = v;
                } else if (v > b1) {
                    b1 = v;
                }
            }
            red[g] = per >= 2u ? b0 + b1 : b0;
        }
        barrier();
        for (uint g = tid; g < p.n_groups; g += WG) {
            const float gs = red[g];
            uint rank = 0;
            for (uint h = 0; h < p.n_groups; ++h)
                if (red[h] > gs || (red[h] == gs && h < g)) ++rank;
            if (rank >= p.n_groups_used)
                for (uint e = g * per; e < (g + 1u) * per; ++e) sel[e] = -1.0 / 0.0;
        }
        barrier();
    }

    for (uint e = tid; e < n; e += WG) {
        const float v = sel[e];
        uint rank = 0;
        for (uint f = 0; f < n && rank < p.k; ++f)
            if (sel[f] > v || (sel[f] == v && f < e)) ++rank;
        if (rank < p.k) chosen[rank] = e;
    }
    barrier();

    if (tid == 0u) {
        float s = 0.0;
        for (uint j = 0; j < p.k; ++j) s += prob[chosen[j]];
        wsum = s;
    }
    barrier();
    for (uint j = tid; j < p.k; j += WG) {
        const float w = prob[chosen[j]];
        ids[p.ids_off + t * p.k + j] = int(chosen[j]);
        wts[p.w_off + t * p.k + j] = (p.renorm != 0u ? w / wsum : w) * p.scale;
    }
}
