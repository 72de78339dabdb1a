// Scalar reference for the k-quant family: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS and their activation
// format Q8_K. This file is the specification the fast CPU kernels are tested against.
//
// Every weight block is described by one common "unpacked" model: 256 small integers q[e], sixteen
// integer scales sc[k] and (for the affine types) sixteen integer mins mn[k], one per 16 elements
// (formats with 32-element sub-blocks repeat each value twice), and two floats d and dmin:
//
//     value[e] = (d * sc[e/16]) * q[e] - (dmin * mn[e/16])        (affine: Q2_K, Q4_K, Q5_K)
//     value[e] = (d * sc[e/16]) * q[e]                            (symmetric: Q3_K, Q6_K, IQ4_XS)
//
// evaluated in float with exactly that operation order, which is how ggml dequantizes each format.
// The dot product with a Q8_K row (x[e] = dx * qx[e], bsums[k] = sum of qx over 16 elements) is
//
//     block = (dx * d) * isum - (dx * dmin) * imin,   isum = sum_k sc[k] * sum_{e in k} q[e] * qx[e]
//                                                     imin = sum_k mn[k] * bsums[k]
//
// with isum and imin exact 32-bit integers, summed over blocks in float in block order.
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "quant/quant.h"

namespace yiti::quant {

namespace {

// ------------------------------------------------------------------------------------------------
// Helpers

// Round to nearest, ties to even (the default FP rounding mode, what cvtps2dq does). Out-of-range
// values saturate (callers clamp the result to a small range anyway).
inline int round_int(float v) {
    const float r = std::nearbyint(v);
    if (!(r > -1073741824.f)) return r != r ? 0 : -1073741824;
    if (r > 1073741824.f) return 1073741824;
    return (int)r;
}

inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

struct Unpacked {
    float d = 0, dmin = 0;
    bool affine = false;  // has the "- dmin * mn" term
    int8_t q[QK_K];
    int16_t sc[QK_K / 16];
    int16_t mn[QK_K / 16];
};

// The 12-byte packing of eight 6-bit scales and eight 6-bit mins used by Q4_K and Q5_K:
//   bytes 0..3:  scale j (j < 4) in bits 0..5, high 2 bits of scale j+4 in bits 6..7
//   bytes 4..7:  min j (j < 4) in bits 0..5,   high 2 bits of min j+4 in bits 6..7
//   bytes 8..11: low 4 bits of scale j+4 in bits 0..3, low 4 bits of min j+4 in bits 4..7
void scale_min_k4(int j, const uint8_t* s, int* sc, int* mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

void pack_scale_min_k4(const int* sc, const int* mn, uint8_t* s) {
    memset(s, 0, K_SCALE_SIZE);
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            s[j] |= (uint8_t)sc[j];
            s[j + 4] |= (uint8_t)mn[j];
        } else {
            s[j + 4] = (uint8_t)((sc[j] & 0x0F) | ((mn[j] & 0x0F) << 4));
            s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            s[j] |= (uint8_t)((mn[j] >> 4) << 6);
        }
    }
}

// Q3_K's 12-byte packing of sixteen 6-bit scales (stored with +32 bias):
//   low 4 bits of scale k: byte k (k < 8) bits 0..3, byte k-8 bits 4..7 (k >= 8)
//   high 2 bits of scale k: byte 8 + k%4, bits 2*(k/4) .. 2*(k/4)+1
int q3k_scale(int k, const uint8_t* s) {
    const int lo = k < 8 ? (s[k] & 0x0F) : (s[k - 8] >> 4);
    const int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

// IQ4_XS: 6-bit scale of 32-element sub-block ib (stored with +32 bias).
int iq4xs_scale(int ib, const block_iq4_xs& b) {
    const int lo = (b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
    const int hi = (b.scales_h >> (2 * ib)) & 3;
    return (lo | (hi << 4)) - 32;
}

// ------------------------------------------------------------------------------------------------
// Unpacking each format into the common model.

// Q2_K: elements 128*h + 32*j + l (h < 2, j < 4, l < 32) are bits 2j..2j+1 of qs[32*h + l].
// Sub-block k = e/16 uses scales[k]: low nibble scale, high nibble min.
void unpack_q2_K(const block_q2_K& b, Unpacked& u) {
    u.d = fp16_to_fp32(b.d);
    u.dmin = fp16_to_fp32(b.dmin);
    u.affine = true;
    for (int e = 0; e < QK_K; ++e) {
        const int h = e / 128, j = (e % 128) / 32, l = e % 32;
        u.q[e] = (int8_t)((b.qs[32 * h + l] >> (2 * j)) & 3);
    }
    for (int k = 0; k < 16; ++k) {
        u.sc[k] = b.scales[k] & 0x0F;
        u.mn[k] = b.scales[k] >> 4;
    }
}

// Q3_K: low 2 bits as Q2_K; the high bit of element e = 32*c + l is bit c of hmask[l]; the value
// is (low | high << 2) - 4, i.e. "minus 4 when the high bit is clear".
void unpack_q3_K(const block_q3_K& b, Unpacked& u) {
    u.d = fp16_to_fp32(b.d);
    u.dmin = 0;
    u.affine = false;
    for (int e = 0; e < QK_K; ++e) {
        const int h = e / 128, j = (e % 128) / 32, l = e % 32, c = e / 32;
        const int low = (b.qs[32 * h + l] >> (2 * j)) & 3;
        const int high = (b.hmask[l] >> c) & 1;
        u.q[e] = (int8_t)((low | (high << 2)) - 4);
    }
    for (int k = 0; k < 16; ++k) {
        u.sc[k] = (int16_t)q3k_scale(k, b.scales);
        u.mn[k] = 0;
    }
}

// Q4_K: elements 64*p + l (l < 32) are the low nibbles of qs[32*p + l], elements 64*p + 32 + l the
// high nibbles. Sub-block j (32 elements) has 6-bit scale and min from scale_min_k4(j).
void unpack_q4_K(const block_q4_K& b, Unpacked& u) {
    u.d = fp16_to_fp32(b.d);
    u.dmin = fp16_to_fp32(b.dmin);
    u.affine = true;
    for (int e = 0; e < QK_K; ++e) {
        const int p = e / 64, hi = (e % 64) / 32, l = e % 32;
        u.q[e] = (int8_t)((b.qs[32 * p + l] >> (4 * hi)) & 0x0F);
    }
    for (int j = 0; j < 8; ++j) {
        int sc, mn;
        scale_min_k4(j, b.scales, &sc, &mn);
        u.sc[2 * j] = u.sc[2 * j + 1] = (int16_t)sc;
        u.mn[2 * j] = u.mn[2 * j + 1] = (int16_t)mn;
    }
}

// Q5_K: the Q4_K nibbles plus a fifth bit: element e = 32*c + l has bit c of qh[l] as bit 4.
void unpack_q5_K(const block_q5_K& b, Unpacked& u) {
    u.d = fp16_to_fp32(b.d);
    u.dmin = fp16_to_fp32(b.dmin);
    u.affine = true;
    for (int e = 0; e < QK_K; ++e) {
        const int p = e / 64, hi = (e % 64) / 32, l = e % 32, c = e / 32;
        const int low = (b.qs[32 * p + l] >> (4 * hi)) & 0x0F;
        const int high = (b.qh[l] >> c) & 1;
        u.q[e] = (int8_t)(low | (high << 4));
    }
    for (int j = 0; j < 8; ++j) {
        int sc, mn;
        scale_min_k4(j, b.scales, &sc, &mn);
        u.sc[2 * j] = u.sc[2 * j + 1] = (int16_t)sc;
        u.mn[2 * j] = u.mn[2 * j + 1] = (int16_t)mn;
    }
}

// Q6_K: in each half h (128 elements), element 128*h + 32*j + l (j < 4, l < 32) takes its low 4 bits
// from ql[64*h + 32*(j%2) + l] (low nibble for j < 2, high nibble for j >= 2) and its high 2 bits
// from bits 2j..2j+1 of qh[32*h + l]; value q - 32. Sub-block k = e/16 uses the int8 scales[k].
void unpack_q6_K(const block_q6_K& b, Unpacked& u) {
    u.d = fp16_to_fp32(b.d);
    u.dmin = 0;
    u.affine = false;
    for (int e = 0; e < QK_K; ++e) {
        const int h = e / 128, j = (e % 128) / 32, l = e % 32;
        const int low = (b.ql[64 * h + 32 * (j % 2) + l] >> (4 * (j / 2))) & 0x0F;
        const int high = (b.qh[32 * h + l] >> (2 * j)) & 3;
        u.q[e] = (int8_t)((low | (high << 4)) - 32);
    }
    for (int k = 0; k < 16; ++k) {
        u.sc[k] = b.scales[k];
        u.mn[k] = 0;
    }
}

// IQ4_XS: sub-block ib (32 elements) stores 16 bytes qs[16*ib ..]: element 32*ib + l is the low
// nibble of qs[16*ib + l] for l < 16 and the high nibble of qs[16*ib + l - 16] otherwise; the
// nibble indexes kvalues_iq4nl. Scale ls - 32 from scales_l / scales_h.
void unpack_iq4_xs(const block_iq4_xs& b, Unpacked& u) {
    u.d = fp16_to_fp32(b.d);
    u.dmin = 0;
    u.affine = false;
    for (int e = 0; e < QK_K; ++e) {
        const int ib = e / 32, l = e % 32;
        const int nib = l < 16 ? (b.qs[16 * ib + l] & 0x0F) : (b.qs[16 * ib + l - 16] >> 4);
        u.q[e] = kvalues_iq4nl[nib];
    }
    for (int ib = 0; ib < 8; ++ib) {
        const int ls = iq4xs_scale(ib, b);
        u.sc[2 * ib] = u.sc[2 * ib + 1] = (int16_t)ls;
        u.mn[2 * ib] = u.mn[2 * ib + 1] = 0;
    }
}

template <class Block, void (*Unpack)(const Block&, Unpacked&)>
void to_float_t(const void* src, float* dst, int64_t n) {
    const Block* b = (const Block*)src;
    Unpacked u;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        Unpack(b[i], u);
        for (int e = 0; e < QK_K; ++e) {
            const float dl = u.d * (float)u.sc[e / 16];
            if (u.affine) {
                const float ml = u.dmin * (float)u.mn[e / 16];
                dst[e] = dl * (float)u.q[e] - ml;
            } else {
                dst[e] = dl * (float)u.q[e];
            }
        }
        dst += QK_K;
    }
}

template <class Block, void (*Unpack)(const Block&, Unpacked&)>
float vec_dot_t(int64_t n, const void* w, const void* x) {
    const Block* b = (const Block*)w;
    const block_q8_K* y = (const block_q8_K*)x;
    Unpacked u;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        Unpack(b[i], u);
        int32_t isum = 0, imin = 0;
        for (int k = 0; k < 16; ++k) {
            int32_t s = 0;
            for (int l = 0; l < 16; ++l) s += (int32_t)u.q[16 * k + l] * y[i].qs[16 * k + l];
            isum += u.sc[k] * s;
            imin += u.mn[k] * y[i].bsums[k];
        }
        const float dall = y[i].d * u.d;
        if (u.affine) {
            const float dmin = y[i].d * u.dmin;
            sum += dall * (float)isum - dmin * (float)imin;
        } else {
            sum += dall * (float)isum;
        }
    }
    return sum;
}

// ------------------------------------------------------------------------------------------------
// Quantization helpers (reference quantizers: deterministic, good, not bit-identical to ggml).

// Fit x[i] ~= a * L[i] - m with integer L in [0, nmax], a >= 0, m >= 0, minimizing the weighted
// squared error. Candidate step sizes spread the range [min(x,0), max(x)] over nmax-1 .. nmax+1
// levels; each candidate's levels get a weighted least-squares refit of (a, m); the best is then
// refined by requantizing with its own (a, m) until the error stops improving.
void fit_affine(const float* x, const float* w, int n, int nmax, float* a_out, float* m_out, uint8_t* L) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    if (lo > 0) lo = 0;
    if (hi <= lo) {  // all equal (and <= 0): a constant block
        for (int i = 0; i < n; ++i) L[i] = 0;
        *a_out = 0;
        *m_out = -lo;
        return;
    }
    auto error_of = [&](float a, float c, const uint8_t* q) {
        float e = 0;
        for (int i = 0; i < n; ++i) {
            const float diff = a * q[i] + c - x[i];
            e += w[i] * diff * diff;
        }
        return e;
    };
    // Weighted least squares for x ~= a*q + c with c <= 0; false when degenerate.
    auto refit = [&](const uint8_t* q, float* a, float* c) {
        float sw = 0, sx = 0, sq = 0, sq2 = 0, sxq = 0;
        for (int i = 0; i < n; ++i) {
            sw += w[i];
            sx += w[i] * x[i];
            sq += w[i] * q[i];
            sq2 += w[i] * q[i] * q[i];
            sxq += w[i] * x[i] * q[i];
        }
        const float det = sw * sq2 - sq * sq;
        if (det <= 0) return false;
        float aa = (sw * sxq - sx * sq) / det;
        float cc = (sq2 * sx - sq * sxq) / det;
        if (cc > 0) {  // the format can only subtract: pin the offset at zero
            cc = 0;
            aa = sq2 > 0 ? sxq / sq2 : 0;
        }
        if (!(aa > 0)) return false;
        *a = aa;
        *c = cc;
        return true;
    };
    auto quantize = [&](float a, float c, uint8_t* q) {
        const float ia = 1.0f / a;
        for (int i = 0; i < n; ++i) q[i] = (uint8_t)clampi(round_int((x[i] - c) * ia), 0, nmax);
    };

    float best_a = (hi - lo) / nmax, best_c = lo;
    quantize(best_a, best_c, L);
    float best_err = error_of(best_a, best_c, L);
    uint8_t cand[32];
    const int nsteps = 20;
    for (int s = 0; s <= nsteps; ++s) {
        const float levels = (float)nmax - 1.0f + 2.0f * (float)s / nsteps;
        const float ia = levels / (hi - lo);
        for (int i = 0; i < n; ++i) cand[i] = (uint8_t)clampi(round_int((x[i] - lo) * ia), 0, nmax);
        float a, c;
        if (!refit(cand, &a, &c)) continue;
        const float err = error_of(a, c, cand);
        if (err < best_err) {
            best_err = err;
            best_a = a;
            best_c = c;
            memcpy(L, cand, n);
        }
    }
    for (int iter = 0; iter < 4; ++iter) {
        quantize(best_a, best_c, cand);
        float a, c;
        if (!refit(cand, &a, &c)) break;
        const float err = error_of(a, c, cand);
        if (!(err < best_err)) break;
        best_err = err;
        best_a = a;
        best_c = c;
        memcpy(L, cand, n);
    }
    *a_out = best_a;
    *m_out = -best_c;
}

// Fit x[i] ~= s * L[i] with integer L in [-nmax, nmax-1] (s may be negative: the element of largest
// magnitude goes to the -nmax end, which has one more level). Candidates map the largest element to
// -(nmax + t/10) for t in -9..9; each gets the least-squares s for its levels; the best wins.
float fit_symmetric(const float* x, const float* w, int n, int nmax) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            vmax = x[i];
        }
    }
    if (amax < 1e-15f) return 0.f;
    float best_s = 0, best_q = -1;
    for (int t = -9; t <= 9; ++t) {
        const float is = -((float)nmax + 0.1f * t) / vmax;
        float sxl = 0, sl2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clampi(round_int(is * x[i]), -nmax, nmax - 1);
            sxl += w[i] * x[i] * l;
            sl2 += w[i] * l * l;
        }
        if (sl2 <= 0) continue;
        const float quality = sxl * sxl / sl2;  // error reduction of the best s for these levels
        if (quality > best_q) {
            best_q = quality;
            best_s = sxl / sl2;
        }
    }
    return best_s;
}

// Nearest entry of kvalues_iq4nl (ties go to the lower index).
int nearest_iq4nl(float v) {
    int best = 0;
    float bd = std::fabs(v - kvalues_iq4nl[0]);
    for (int k = 1; k < 16; ++k) {
        const float dd = std::fabs(v - kvalues_iq4nl[k]);
        if (dd < bd) {
            bd = dd;
            best = k;
        }
    }
    return best;
}

// Best scale s for x[i] ~= s * kvalues_iq4nl[L[i]] over 32 elements: candidates map the largest
// element to either end of the table (+- 7 steps), least-squares s for each.
float fit_iq4(const float* x, const float* w, int n) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            vmax = x[i];
        }
    }
    if (amax < 1e-15f) return 0.f;
    float best_s = 0, best_q = -1;
    for (int end = 0; end < 2; ++end) {
        const float target = end == 0 ? kvalues_iq4nl[0] : kvalues_iq4nl[15];
        for (int t = -7; t <= 7; ++t) {
            const float is = (target + t) / vmax;
            float sxq = 0, sq2 = 0;
            for (int i = 0; i < n; ++i) {
                const float q = kvalues_iq4nl[nearest_iq4nl(is * x[i])];
                sxq += w[i] * x[i] * q;
                sq2 += w[i] * q * q;
            }
            if (sq2 <= 0) continue;
            const float quality = sxq * sxq / sq2;
            if (quality > best_q) {
                best_q = quality;
                best_s = sxq / sq2;
            }
        }
    }
    return best_s;
}

// Weights for the affine fits: emphasise large-magnitude elements, never zero.
void affine_weights(const float* x, int n, float* w) {
    float s2 = 0;
    for (int i = 0; i < n; ++i) s2 += x[i] * x[i];
    const float rms = std::sqrt(s2 / n);
    for (int i = 0; i < n; ++i) w[i] = rms + std::fabs(x[i]);
}

// Quantize the per-sub-block float scales/mins of an affine format to nbits-unsigned integers with one
// fp16 super-scale each; returns the stored fp16 values and integer scales.
void quantize_affine_scales(const float* scales, const float* mins, int nsub, int qmax, f16_t* d, f16_t* dmin,
                            int* ls, int* lm) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < nsub; ++j) {
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
    }
    const float is = max_scale > 0 ? qmax / max_scale : 0.f;
    const float im = max_min > 0 ? qmax / max_min : 0.f;
    for (int j = 0; j < nsub; ++j) {
        ls[j] = clampi(round_int(is * scales[j]), 0, qmax);
        lm[j] = clampi(round_int(im * mins[j]), 0, qmax);
    }
    *d = fp32_to_fp16(max_scale / qmax);
    *dmin = fp32_to_fp16(max_min / qmax);
}

// Final levels of an affine sub-block given the stored scale/min.
void requantize_affine(const float* x, int n, float dl, float ml, int nmax, uint8_t* L) {
    if (dl == 0) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return;
    }
    for (int i = 0; i < n; ++i) L[i] = (uint8_t)clampi(round_int((x[i] + ml) / dl), 0, nmax);
}

// ------------------------------------------------------------------------------------------------
// Per-format quantizers

void from_float_q2_K(const float* src, void* dst, int64_t n) {
    block_q2_K* y = (block_q2_K*)dst;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float* x = src + i * QK_K;
        float scales[16], mins[16], w[16];
        uint8_t L[QK_K];
        for (int k = 0; k < 16; ++k) {
            affine_weights(x + 16 * k, 16, w);
            fit_affine(x + 16 * k, w, 16, 3, &scales[k], &mins[k], L + 16 * k);
        }
        int ls[16], lm[16];
        quantize_affine_scales(scales, mins, 16, 15, &y[i].d, &y[i].dmin, ls, lm);
        const float d = fp16_to_fp32(y[i].d), dmin = fp16_to_fp32(y[i].dmin);
        for (int k = 0; k < 16; ++k) {
            y[i].scales[k] = (uint8_t)(ls[k] | (lm[k] << 4));
            requantize_affine(x + 16 * k, 16, d * ls[k], dmin * lm[k], 3, L + 16 * k);
        }
        memset(y[i].qs, 0, sizeof(y[i].qs));
        for (int e = 0; e < QK_K; ++e) {
            const int h = e / 128, j = (e % 128) / 32, l = e % 32;
            y[i].qs[32 * h + l] |= (uint8_t)(L[e] << (2 * j));
        }
    }
}

template <class Block, int nmax>
void fill_q45_K(const float* x, Block& b, uint8_t* L) {
    float scales[8], mins[8], w[32];
    for (int j = 0; j < 8; ++j) {
        affine_weights(x + 32 * j, 32, w);
        fit_affine(x + 32 * j, w, 32, nmax, &scales[j], &mins[j], L + 32 * j);
    }
    int ls[8], lm[8];
    quantize_affine_scales(scales, mins, 8, 63, &b.d, &b.dmin, ls, lm);
    pack_scale_min_k4(ls, lm, b.scales);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int j = 0; j < 8; ++j) requantize_affine(x + 32 * j, 32, d * ls[j], dmin * lm[j], nmax, L + 32 * j);
}

void from_float_q4_K(const float* src, void* dst, int64_t n) {
    block_q4_K* y = (block_q4_K*)dst;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        uint8_t L[QK_K];
        fill_q45_K<block_q4_K, 15>(src + i * QK_K, y[i], L);
        for (int p = 0; p < 4; ++p)
            for (int l = 0; l < 32; ++l) y[i].qs[32 * p + l] = (uint8_t)(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
    }
}

void from_float_q5_K(const float* src, void* dst, int64_t n) {
    block_q5_K* y = (block_q5_K*)dst;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        uint8_t L[QK_K];
        fill_q45_K<block_q5_K, 31>(src + i * QK_K, y[i], L);
        memset(y[i].qh, 0, sizeof(y[i].qh));
        for (int p = 0; p < 4; ++p)
            for (int l = 0; l < 32; ++l)
                y[i].qs[32 * p + l] = (uint8_t)((L[64 * p + l] & 0x0F) | ((L[64 * p + 32 + l] & 0x0F) << 4));
        for (int e = 0; e < QK_K; ++e) y[i].qh[e % 32] |= (uint8_t)((L[e] >> 4) << (e / 32));
    }
}

void from_float_q3_K(const float* src, void* dst, int64_t n) {
    block_q3_K* y = (block_q3_K*)dst;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float* x = src + i * QK_K;
        float scales[16], w[16];
        for (int k = 0; k < 16; ++k) {
            for (int l = 0; l < 16; ++l) w[l] = x[16 * k + l] * x[16 * k + l] + 1e-30f;
            scales[k] = fit_symmetric(x + 16 * k, w, 16, 4);
        }
        float amax = 0, vmax = 0;
        for (int k = 0; k < 16; ++k)
            if (std::fabs(scales[k]) > amax) {
                amax = std::fabs(scales[k]);
                vmax = scales[k];
            }
        memset(y[i].scales, 0, sizeof(y[i].scales));
        int ls[16] = {};
        if (amax > 0) {
            const float is = -32.f / vmax;
            for (int k = 0; k < 16; ++k) ls[k] = clampi(round_int(is * scales[k]), -32, 31);
            y[i].d = fp32_to_fp16(1 / is);
        } else {
            y[i].d = fp32_to_fp16(0.f);
        }
        for (int k = 0; k < 16; ++k) {
            const int v = ls[k] + 32;
            if (k < 8) y[i].scales[k] |= (uint8_t)(v & 0x0F);
            else y[i].scales[k - 8] |= (uint8_t)((v & 0x0F) << 4);
            y[i].scales[8 + k % 4] |= (uint8_t)((v >> 4) << (2 * (k / 4)));
        }
        const float d = fp16_to_fp32(y[i].d);
        uint8_t L[QK_K];  // biased levels 0..7
        for (int k = 0; k < 16; ++k) {
            const float dl = d * ls[k];
            for (int l = 0; l < 16; ++l)
                L[16 * k + l] = (uint8_t)(dl != 0 ? clampi(round_int(x[16 * k + l] / dl), -4, 3) + 4 : 4);
        }
        memset(y[i].hmask, 0, sizeof(y[i].hmask));
        memset(y[i].qs, 0, sizeof(y[i].qs));
        for (int e = 0; e < QK_K; ++e) {
            const int h = e / 128, j = (e % 128) / 32, l = e % 32, c = e / 32;
            y[i].qs[32 * h + l] |= (uint8_t)((L[e] & 3) << (2 * j));
            y[i].hmask[l] |= (uint8_t)((L[e] >> 2) << c);
        }
    }
}

void from_float_q6_K(const float* src, void* dst, int64_t n) {
    block_q6_K* y = (block_q6_K*)dst;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float* x = src + i * QK_K;
        float scales[16], w[16];
        for (int k = 0; k < 16; ++k) {
            for (int l = 0; l < 16; ++l) w[l] = x[16 * k + l] * x[16 * k + l] + 1e-30f;
            scales[k] = fit_symmetric(x + 16 * k, w, 16, 32);
        }
        float amax = 0, vmax = 0;
        for (int k = 0; k < 16; ++k)
            if (std::fabs(scales[k]) > amax) {
                amax = std::fabs(scales[k]);
                vmax = scales[k];
            }
        memset(&y[i], 0, sizeof(block_q6_K));
        uint8_t L[QK_K];  // biased levels 0..63
        if (amax < 1e-15f) {
            y[i].d = fp32_to_fp16(0.f);
            memset(L, 32, sizeof(L));
        } else {
            const float is = -128.f / vmax;
            for (int k = 0; k < 16; ++k) y[i].scales[k] = (int8_t)clampi(round_int(is * scales[k]), -128, 127);
            y[i].d = fp32_to_fp16(1 / is);
            const float d = fp16_to_fp32(y[i].d);
            for (int k = 0; k < 16; ++k) {
                const float dl = d * y[i].scales[k];
                for (int l = 0; l < 16; ++l)
                    L[16 * k + l] =
                        (uint8_t)(dl != 0 ? clampi(round_int(x[16 * k + l] / dl), -32, 31) + 32 : 32);
            }
        }
        for (int e = 0; e < QK_K; ++e) {
            const int h = e / 128, j = (e % 128) / 32, l = e % 32;
            y[i].ql[64 * h + 32 * (j % 2) + l] |= (uint8_t)((L[e] & 0x0F) << (4 * (j / 2)));
            y[i].qh[32 * h + l] |= (uint8_t)((L[e] >> 4) << (2 * j));
        }
    }
}

void from_float_iq4_xs(const float* src, void* dst, int64_t n) {
    block_iq4_xs* y = (block_iq4_xs*)dst;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float* x = src + i * QK_K;
        float scales[8], w[32];
        for (int ib = 0; ib < 8; ++ib) {
            for (int l = 0; l < 32; ++l) w[l] = x[32 * ib + l] * x[32 * ib + l] + 1e-30f;
            scales[ib] = fit_iq4(x + 32 * ib, w, 32);
        }
        float amax = 0, vmax = 0;
        for (int ib = 0; ib < 8; ++ib)
            if (std::fabs(scales[ib]) > amax) {
                amax = std::fabs(scales[ib]);
                vmax = scales[ib];
            }
        memset(&y[i], 0, sizeof(block_iq4_xs));
        const float d_f = -vmax / 32;  // the largest sub-block scale becomes -32
        y[i].d = fp32_to_fp16(d_f);
        const float d = fp16_to_fp32(y[i].d);
        const float id = d != 0 ? 1 / d : 0.f;
        for (int ib = 0; ib < 8; ++ib) {
            const int ls = clampi(round_int(id * scales[ib]), -32, 31);
            const float dl = d * ls;
            const float idl = dl != 0 ? 1 / dl : 0.f;
            const int v = ls + 32;
            y[i].scales_l[ib / 2] |= (uint8_t)((v & 0x0F) << (4 * (ib % 2)));
            y[i].scales_h |= (uint16_t)((v >> 4) << (2 * ib));
            for (int l = 0; l < 32; ++l) {
                // With a zero scale every entry decodes to 0; index 8 (value 1) is as good as any.
                const int q = idl != 0 ? nearest_iq4nl(idl * x[32 * ib + l]) : 8;
                if (l < 16) y[i].qs[16 * ib + l] |= (uint8_t)q;
                else y[i].qs[16 * ib + l - 16] |= (uint8_t)(q << 4);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Q8_K: x[e] = d * qs[e]. Quantization as ggml defines it: the element of largest magnitude (the
// first one on ties) maps to -127, i.e. iscale = -127 / max and d = 1 / iscale (d has the opposite sign
// of that element); qs = min(127, round_nearest_even(iscale * x)); bsums[k] = sum of qs[16k .. 16k+15].
// An all-zero block gives d = 0 and zero quants and sums.

void from_float_q8_K(const float* src, void* dst, int64_t n) {
    block_q8_K* y = (block_q8_K*)dst;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const float* x = src + i * QK_K;
        float amax = 0, vmax = 0;
        for (int e = 0; e < QK_K; ++e) {
            const float ax = std::fabs(x[e]);
            if (ax > amax) {
                amax = ax;
                vmax = x[e];
            }
        }
        if (amax == 0) {
            y[i].d = 0;
            memset(y[i].qs, 0, sizeof(y[i].qs));
            memset(y[i].bsums, 0, sizeof(y[i].bsums));
            continue;
        }
        const float iscale = -127.f / vmax;
        for (int e = 0; e < QK_K; ++e) y[i].qs[e] = (int8_t)std::min(127, round_int(iscale * x[e]));
        for (int k = 0; k < 16; ++k) {
            int s = 0;
            for (int l = 0; l < 16; ++l) s += y[i].qs[16 * k + l];
            y[i].bsums[k] = (int16_t)s;
        }
        y[i].d = 1 / iscale;
    }
}

void to_float_q8_K(const void* src, float* dst, int64_t n) {
    const block_q8_K* b = (const block_q8_K*)src;
    for (int64_t i = 0; i < n / QK_K; ++i)
        for (int e = 0; e < QK_K; ++e) dst[i * QK_K + e] = b[i].d * b[i].qs[e];
}

float vec_dot_q8_K(int64_t n, const void* w, const void* x) {
    const block_q8_K* a = (const block_q8_K*)w;
    const block_q8_K* b = (const block_q8_K*)x;
    float sum = 0;
    for (int64_t i = 0; i < n / QK_K; ++i) {
        int32_t s = 0;
        for (int e = 0; e < QK_K; ++e) s += (int32_t)a[i].qs[e] * b[i].qs[e];
        sum += a[i].d * b[i].d * (float)s;
    }
    return sum;
}

const RefTraits k_q2_K = {DType::Q8_K, to_float_t<block_q2_K, unpack_q2_K>, from_float_q2_K,
                          vec_dot_t<block_q2_K, unpack_q2_K>};
const RefTraits k_q3_K = {DType::Q8_K, to_float_t<block_q3_K, unpack_q3_K>, from_float_q3_K,
                          vec_dot_t<block_q3_K, unpack_q3_K>};
const RefTraits k_q4_K = {DType::Q8_K, to_float_t<block_q4_K, unpack_q4_K>, from_float_q4_K,
                          vec_dot_t<block_q4_K, unpack_q4_K>};
const RefTraits k_q5_K = {DType::Q8_K, to_float_t<block_q5_K, unpack_q5_K>, from_float_q5_K,
                          vec_dot_t<block_q5_K, unpack_q5_K>};
const RefTraits k_q6_K = {DType::Q8_K, to_float_t<block_q6_K, unpack_q6_K>, from_float_q6_K,
                          vec_dot_t<block_q6_K, unpack_q6_K>};
const RefTraits k_iq4_xs = {DType::Q8_K, to_float_t<block_iq4_xs, unpack_iq4_xs>, from_float_iq4_xs,
                            vec_dot_t<block_iq4_xs, unpack_iq4_xs>};
const RefTraits k_q8_K = {DType::Q8_K, to_float_q8_K, from_float_q8_K, vec_dot_q8_K};

}  // namespace

const RefTraits* ref_traits_kquants(DType t) {
    switch (t) {
        case DType::Q2_K: return &k_q2_K;
        case DType::Q3_K: return &k_q3_K;
        case DType::Q4_K: return &k_q4_K;
        case DType::Q5_K: return &k_q5_K;
        case DType::Q6_K: return &k_q6_K;
        case DType::IQ4_XS: return &k_iq4_xs;
        case DType::Q8_K: return &k_q8_K;
        default: return nullptr;
    }
}

}  // namespace yiti::quant
