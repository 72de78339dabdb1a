// Scalar reference for the legacy family: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, IQ4_NL.
//
// This file is the specification the fast kernels in src/cpu/legacy*.cpp are tested against. The
// formats are ggml's (blocks of 32 elements, layouts in quant/blocks.h):
//
//   Q4_0    x = (q - 8) * d          q: 4 bits; byte j holds element j (low nibble), j+16 (high)
//   Q4_1    x = q * d + m            same nibble order
//   Q5_0    x = (q - 16) * d         q: 4 low bits as Q4_0, 5th bit = bit j of qh (uint32 LE) for element j
//   Q5_1    x = q * d + m            same bit layout as Q5_0
//   Q8_0    x = q * d                q: int8
//   Q8_1    x = q * d                q: int8; s = d * sum(q) (an activation format)
//   IQ4_NL  x = d * kvalues_iq4nl[q] same nibble order as Q4_0
//
// All scales d, m, s are IEEE halves.
//
// Dot products (vec_dot_type): Q4_0, Q5_0, Q8_0 and IQ4_NL take Q8_0 activations; Q4_1 and Q5_1 take
// Q8_1 activations, whose stored s = d_y * sum(q_y) turns the min term into one product per block:
//   sum_j (q_j d + m) (y_j d_y) = d d_y sum_j q_j y_j + m * s.
// The reference forms each block's integer sum exactly, multiplies by the block scales in double
// (a product of halves is exact) and sums the blocks in double: it is the exact value of the
// format's dot product up to the final rounding to float.
//
// Quantization follows ggml's reference quantizers (same scale choice and rounding), so rows made
// here match ggml's bytes for finite inputs. Inputs must be finite.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "quant/quant.h"

namespace yiti::quant {

namespace {

constexpr int QK = 32;  // every legacy format has 32 elements per block

inline float h2f(f16_t h) { return fp16_to_fp32(h); }
inline f16_t f2h(float f) { return fp32_to_fp16(f); }

// (int) of a value expected in [0, hi + 1), clamped to [0, hi]; truncation as ggml's (int8_t) casts.
inline int trunc_clamp(float v, int hi) {
    if (!(v > 0.0f)) return 0;
    if (v >= (float)hi) return hi;
    return (int)v;
}

// Largest |x| of a block and the signed element that has it (the first one on ties).
inline void block_absmax(const float* x, float& amax, float& max) {
    amax = 0.0f;
    max = 0.0f;
    for (int j = 0; j < QK; ++j) {
        const float a = std::fabs(x[j]);
        if (a > amax) {
            amax = a;
            max = x[j];
        }
    }
}

inline void block_minmax(const float* x, float& mn, float& mx) {
    mn = x[0];
    mx = x[0];
    for (int j = 1; j < QK; ++j) {
        mn = std::min(mn, x[j]);
        mx = std::max(mx, x[j]);
    }
}

// The 5th bit of element j of a Q5 block.
inline int q5_high_bit(const uint8_t* qh, int j) {
    uint32_t h;
    memcpy(&h, qh, 4);
    return (int)((h >> j) & 1u);
}

// ---------------------------------------------------------------- Q4_0
void q4_0_to_float(const void* src, float* y, int64_t n) {
    const block_q4_0* b = static_cast<const block_q4_0*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < QK / 2; ++j) {
            y[j] = (float)((b[i].qs[j] & 0x0F) - 8) * d;
            y[j + QK / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

// d = max / -8 where max is the element of largest magnitude (with its sign): it maps to q = 0
// (value -8), so the full range [-8, 7] is used on the other side.
void q4_0_from_float(const float* x, void* dst, int64_t n) {
    block_q4_0* b = static_cast<block_q4_0*>(dst);
    for (int64_t i = 0; i < n / QK; ++i, x += QK) {
        float amax, max;
        block_absmax(x, amax, max);
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f2h(d);
        for (int j = 0; j < QK / 2; ++j) {
            const int q0 = trunc_clamp(x[j] * id + 8.5f, 15);
            const int q1 = trunc_clamp(x[j + QK / 2] * id + 8.5f, 15);
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

float q4_0_vec_dot(int64_t n, const void* w, const void* x) {
    const block_q4_0* a = static_cast<const block_q4_0*>(w);
    const block_q8_0* b = static_cast<const block_q8_0*>(x);
    double sum = 0.0;
    for (int64_t i = 0; i < n / QK; ++i) {
        int sumi = 0;
        for (int j = 0; j < QK / 2; ++j) {
            sumi += ((a[i].qs[j] & 0x0F) - 8) * b[i].qs[j];
            sumi += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + QK / 2];
        }
        sum += (double)h2f(a[i].d) * (double)h2f(b[i].d) * (double)sumi;
    }
    return (float)sum;
}

// ---------------------------------------------------------------- Q4_1
void q4_1_to_float(const void* src, float* y, int64_t n) {
    const block_q4_1* b = static_cast<const block_q4_1*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const float d = h2f(b[i].d), m = h2f(b[i].m);
        for (int j = 0; j < QK / 2; ++j) {
            // Multiply, then add: two roundings (no fused multiply-add), as the fast kernels do.
            const float v0 = (float)(b[i].qs[j] & 0x0F) * d;
            const float v1 = (float)(b[i].qs[j] >> 4) * d;
            y[j] = v0 + m;
            y[j + QK / 2] = v1 + m;
        }
    }
}

// d = (max - min) / 15, m = min, q = round((x - min) / d).
void q4_1_from_float(const float* x, void* dst, int64_t n) {
    block_q4_1* b = static_cast<block_q4_1*>(dst);
    for (int64_t i = 0; i < n / QK; ++i, x += QK) {
        float mn, mx;
        block_minmax(x, mn, mx);
        const float d = (mx - mn) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f2h(d);
        b[i].m = f2h(mn);
        for (int j = 0; j < QK / 2; ++j) {
            const int q0 = trunc_clamp((x[j] - mn) * id + 0.5f, 15);
            const int q1 = trunc_clamp((x[j + QK / 2] - mn) * id + 0.5f, 15);
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

float q4_1_vec_dot(int64_t n, const void* w, const void* x) {
    const block_q4_1* a = static_cast<const block_q4_1*>(w);
    const block_q8_1* b = static_cast<const block_q8_1*>(x);
    double sum = 0.0;
    for (int64_t i = 0; i < n / QK; ++i) {
        int sumi = 0;
        for (int j = 0; j < QK / 2; ++j) {
            sumi += (a[i].qs[j] & 0x0F) * b[i].qs[j];
            sumi += (a[i].qs[j] >> 4) * b[i].qs[j + QK / 2];
        }
        sum += (double)h2f(a[i].d) * (double)h2f(b[i].d) * (double)sumi;
        sum += (double)h2f(a[i].m) * (double)h2f(b[i].s);
    }
    return (float)sum;
}

// ---------------------------------------------------------------- Q5_0
void q5_0_to_float(const void* src, float* y, int64_t n) {
    const block_q5_0* b = static_cast<const block_q5_0*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < QK / 2; ++j) {
            const int q0 = (b[i].qs[j] & 0x0F) | (q5_high_bit(b[i].qh, j) << 4);
            const int q1 = (b[i].qs[j] >> 4) | (q5_high_bit(b[i].qh, j + QK / 2) << 4);
            y[j] = (float)(q0 - 16) * d;
            y[j + QK / 2] = (float)(q1 - 16) * d;
        }
    }
}

// d = max / -16 (as Q4_0 with 5 bits).
void q5_0_from_float(const float* x, void* dst, int64_t n) {
    block_q5_0* b = static_cast<block_q5_0*>(dst);
    for (int64_t i = 0; i < n / QK; ++i, x += QK) {
        float amax, max;
        block_absmax(x, amax, max);
        const float d = max / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f2h(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; ++j) {
            const int q0 = trunc_clamp(x[j] * id + 16.5f, 31);
            const int q1 = trunc_clamp(x[j + QK / 2] * id + 16.5f, 31);
            b[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + QK / 2);
        }
        memcpy(b[i].qh, &qh, 4);
    }
}

float q5_0_vec_dot(int64_t n, const void* w, const void* x) {
    const block_q5_0* a = static_cast<const block_q5_0*>(w);
    const block_q8_0* b = static_cast<const block_q8_0*>(x);
    double sum = 0.0;
    for (int64_t i = 0; i < n / QK; ++i) {
        int sumi = 0;
        for (int j = 0; j < QK / 2; ++j) {
            const int q0 = (a[i].qs[j] & 0x0F) | (q5_high_bit(a[i].qh, j) << 4);
            const int q1 = (a[i].qs[j] >> 4) | (q5_high_bit(a[i].qh, j + QK / 2) << 4);
            sumi += (q0 - 16) * b[i].qs[j] + (q1 - 16) * b[i].qs[j + QK / 2];
        }
        sum += (double)h2f(a[i].d) * (double)h2f(b[i].d) * (double)sumi;
    }
    return (float)sum;
}

// ---------------------------------------------------------------- Q5_1
void q5_1_to_float(const void* src, float* y, int64_t n) {
    const block_q5_1* b = static_cast<const block_q5_1*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const float d = h2f(b[i].d), m = h2f(b[i].m);
        for (int j = 0; j < QK / 2; ++j) {
            const int q0 = (b[i].qs[j] & 0x0F) | (q5_high_bit(b[i].qh, j) << 4);
            const int q1 = (b[i].qs[j] >> 4) | (q5_high_bit(b[i].qh, j + QK / 2) << 4);
            const float v0 = (float)q0 * d;
            const float v1 = (float)q1 * d;
            y[j] = v0 + m;
            y[j + QK / 2] = v1 + m;
        }
    }
}

// d = (max - min) / 31, m = min.
void q5_1_from_float(const float* x, void* dst, int64_t n) {
    block_q5_1* b = static_cast<block_q5_1*>(dst);
    for (int64_t i = 0; i < n / QK; ++i, x += QK) {
        float mn, mx;
        block_minmax(x, mn, mx);
        const float d = (mx - mn) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f2h(d);
        b[i].m = f2h(mn);
        uint32_t qh = 0;
        for (int j = 0; j < QK / 2; ++j) {
            const int q0 = trunc_clamp((x[j] - mn) * id + 0.5f, 31);
            const int q1 = trunc_clamp((x[j + QK / 2] - mn) * id + 0.5f, 31);
            b[i].qs[j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + QK / 2);
        }
        memcpy(b[i].qh, &qh, 4);
    }
}

float q5_1_vec_dot(int64_t n, const void* w, const void* x) {
    const block_q5_1* a = static_cast<const block_q5_1*>(w);
    const block_q8_1* b = static_cast<const block_q8_1*>(x);
    double sum = 0.0;
    for (int64_t i = 0; i < n / QK; ++i) {
        int sumi = 0;
        for (int j = 0; j < QK / 2; ++j) {
            const int q0 = (a[i].qs[j] & 0x0F) | (q5_high_bit(a[i].qh, j) << 4);
            const int q1 = (a[i].qs[j] >> 4) | (q5_high_bit(a[i].qh, j + QK / 2) << 4);
            sumi += q0 * b[i].qs[j] + q1 * b[i].qs[j + QK / 2];
        }
        sum += (double)h2f(a[i].d) * (double)h2f(b[i].d) * (double)sumi;
        sum += (double)h2f(a[i].m) * (double)h2f(b[i].s);
    }
    return (float)sum;
}

// ---------------------------------------------------------------- Q8_0
void q8_0_to_float(const void* src, float* y, int64_t n) {
    const block_q8_0* b = static_cast<const block_q8_0*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < QK; ++j) y[j] = (float)b[i].qs[j] * d;
    }
}

// d = amax / 127, q = roundf(x / d) (round half away from zero), so q is in [-127, 127].
void q8_0_from_float(const float* x, void* dst, int64_t n) {
    block_q8_0* b = static_cast<block_q8_0*>(dst);
    for (int64_t i = 0; i < n / QK; ++i, x += QK) {
        float amax, max;
        block_absmax(x, amax, max);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f2h(d);
        for (int j = 0; j < QK; ++j) b[i].qs[j] = (int8_t)std::clamp((int)std::round(x[j] * id), -127, 127);
    }
}

float q8_0_vec_dot(int64_t n, const void* w, const void* x) {
    const block_q8_0* a = static_cast<const block_q8_0*>(w);
    const block_q8_0* b = static_cast<const block_q8_0*>(x);
    double sum = 0.0;
    for (int64_t i = 0; i < n / QK; ++i) {
        int sumi = 0;
        for (int j = 0; j < QK; ++j) sumi += a[i].qs[j] * b[i].qs[j];
        sum += (double)h2f(a[i].d) * (double)h2f(b[i].d) * (double)sumi;
    }
    return (float)sum;
}

// ---------------------------------------------------------------- Q8_1
void q8_1_to_float(const void* src, float* y, int64_t n) {
    const block_q8_1* b = static_cast<const block_q8_1*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < QK; ++j) y[j] = (float)b[i].qs[j] * d;
    }
}

// As Q8_0, plus s = half(sum(q) * d) with d the unrounded float scale.
void q8_1_from_float(const float* x, void* dst, int64_t n) {
    block_q8_1* b = static_cast<block_q8_1*>(dst);
    for (int64_t i = 0; i < n / QK; ++i, x += QK) {
        float amax, max;
        block_absmax(x, amax, max);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = f2h(d);
        int sum = 0;
        for (int j = 0; j < QK; ++j) {
            b[i].qs[j] = (int8_t)std::clamp((int)std::round(x[j] * id), -127, 127);
            sum += b[i].qs[j];
        }
        b[i].s = f2h((float)sum * d);
    }
}

// Q8_1 is only an activation format; its dot product with itself is defined for completeness.
float q8_1_vec_dot(int64_t n, const void* w, const void* x) {
    const block_q8_1* a = static_cast<const block_q8_1*>(w);
    const block_q8_1* b = static_cast<const block_q8_1*>(x);
    double sum = 0.0;
    for (int64_t i = 0; i < n / QK; ++i) {
        int sumi = 0;
        for (int j = 0; j < QK; ++j) sumi += a[i].qs[j] * b[i].qs[j];
        sum += (double)h2f(a[i].d) * (double)h2f(b[i].d) * (double)sumi;
    }
    return (float)sum;
}

// ---------------------------------------------------------------- IQ4_NL
void iq4_nl_to_float(const void* src, float* y, int64_t n) {
    const block_iq4_nl* b = static_cast<const block_iq4_nl*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < QK / 2; ++j) {
            y[j] = (float)kvalues_iq4nl[b[i].qs[j] & 0x0F] * d;
            y[j + QK / 2] = (float)kvalues_iq4nl[b[i].qs[j] >> 4] * d;
        }
    }
}

// Index of the table value nearest to v (the lower one on ties).
inline int iq4_nearest(float v) {
    int best = 0;
    float best_err = std::fabs(v - (float)kvalues_iq4nl[0]);
    for (int k = 1; k < 16; ++k) {
        const float e = std::fabs(v - (float)kvalues_iq4nl[k]);
        if (e < best_err) {
            best_err = e;
            best = k;
        }
    }
    return best;
}

// Scale search, deterministic: try inverse scales that put the largest-magnitude element at
// table value 127 (the positive end, rounded to 113) and at -127 + k for k = -7..7 (the negative
// end, the table's widest); for each, assign every element its nearest table value and take the
// weighted least-squares scale d = sum(w q x) / sum(w q q) with w = x^2. Keep the assignment whose
// least-squares fit removes the most energy, sum(w q x)^2 / sum(w q q); finally re-assign every
// element against the chosen d and store d as a half.
void iq4_nl_from_float(const float* x, void* dst, int64_t n) {
    block_iq4_nl* b = static_cast<block_iq4_nl*>(dst);
    for (int64_t i = 0; i < n / QK; ++i, x += QK) {
        float amax, max;
        block_absmax(x, amax, max);
        if (amax == 0.0f) {
            b[i].d = f2h(0.0f);
            memset(b[i].qs, 0x88, sizeof(b[i].qs));  // index 8 is the value nearest zero; d = 0 anyway
            continue;
        }
        double best_d = 0.0, best_score = -1.0;
        for (int t = -1; t <= 14; ++t) {
            // t = -1: max -> +127; t = 0..14: max -> kvalues[0] + (t - 7) = -134..-120.
            const float id = t < 0 ? 127.0f / max : (float)(kvalues_iq4nl[0] + (t - 7)) / max;
            double sumqx = 0.0, sumq2 = 0.0;  // double: x^3 terms must not overflow
            for (int j = 0; j < QK; ++j) {
                const double q = kvalues_iq4nl[iq4_nearest(id * x[j])];
                const double wt = (double)x[j] * x[j];
                sumqx += wt * q * x[j];
                sumq2 += wt * q * q;
            }
            if (sumq2 > 0.0) {
                const double score = sumqx * sumqx / sumq2;
                if (score > best_score) {
                    best_score = score;
                    best_d = sumqx / sumq2;
                }
            }
        }
        const float d = (float)best_d;
        b[i].d = f2h(d);
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < QK / 2; ++j) {
            const int q0 = iq4_nearest(id * x[j]);
            const int q1 = iq4_nearest(id * x[j + QK / 2]);
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

float iq4_nl_vec_dot(int64_t n, const void* w, const void* x) {
    const block_iq4_nl* a = static_cast<const block_iq4_nl*>(w);
    const block_q8_0* b = static_cast<const block_q8_0*>(x);
    double sum = 0.0;
    for (int64_t i = 0; i < n / QK; ++i) {
        int sumi = 0;
        for (int j = 0; j < QK / 2; ++j) {
            sumi += kvalues_iq4nl[a[i].qs[j] & 0x0F] * b[i].qs[j];
            sumi += kvalues_iq4nl[a[i].qs[j] >> 4] * b[i].qs[j + QK / 2];
        }
        sum += (double)h2f(a[i].d) * (double)h2f(b[i].d) * (double)sumi;
    }
    return (float)sum;
}

const RefTraits k_q4_0 = {DType::Q8_0, q4_0_to_float, q4_0_from_float, q4_0_vec_dot};
const RefTraits k_q4_1 = {DType::Q8_1, q4_1_to_float, q4_1_from_float, q4_1_vec_dot};
const RefTraits k_q5_0 = {DType::Q8_0, q5_0_to_float, q5_0_from_float, q5_0_vec_dot};
const RefTraits k_q5_1 = {DType::Q8_1, q5_1_to_float, q5_1_from_float, q5_1_vec_dot};
const RefTraits k_q8_0 = {DType::Q8_0, q8_0_to_float, q8_0_from_float, q8_0_vec_dot};
const RefTraits k_q8_1 = {DType::Q8_1, q8_1_to_float, q8_1_from_float, q8_1_vec_dot};
const RefTraits k_iq4_nl = {DType::Q8_0, iq4_nl_to_float, iq4_nl_from_float, iq4_nl_vec_dot};

}  // namespace

const RefTraits* ref_traits_legacy(DType t) {
    switch (t) {
        case DType::Q4_0: return &k_q4_0;
        case DType::Q4_1: return &k_q4_1;
        case DType::Q5_0: return &k_q5_0;
        case DType::Q5_1: return &k_q5_1;
        case DType::Q8_0: return &k_q8_0;
        case DType::Q8_1: return &k_q8_1;
        case DType::IQ4_NL: return &k_iq4_nl;
        default: return nullptr;
    }
}

}  // namespace yiti::quant
