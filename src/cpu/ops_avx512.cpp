// AVX-512 variants of small element-wise operators (see cpu/ops.h; ops.cpp dispatches), rounded as
// the generic loops they replace: a chat answer can hang on a near-tie (Cli.ChatMultiTurn), so they
// change speed, not results. rms_norm gives the same bits; SiLU's exponential is rounded correctly,
// where glibc's expf in the generic loop is off by one ulp on a few inputs in 100000.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "cpu/attention_impl.h"

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on their own _mm512_undefined_*() helpers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace yiti::cpu {

namespace {

// exp(x) in double, 8 lanes, relative error below 1e-16 for |x| <= ~745 (2^k * e^r, |r| <= ln2 / 2,
// degree-13 Taylor series, whose remainder is below 4e-18 there): its float rounding is the
// correctly rounded expf except where e^x lies within ~1e-16 of a halfway point between floats.
inline __m512d exp_pd(__m512d x) {
    const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    // r = x - k ln2, with ln2 split in two (its high part has 32 significant bits: k * hi is exact).
    __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(0.6931471803691238164901733), x);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(1.9082149292705877000220e-10), r);
    static constexpr double kInvFact[14] = {1.0,
                                            1.0,
                                            1.0 / 2,
                                            1.0 / 6,
                                            1.0 / 24,
                                            1.0 / 120,
                                            1.0 / 720,
                                            1.0 / 5040,
                                            1.0 / 40320,
                                            1.0 / 362880,
                                            1.0 / 3628800,
                                            1.0 / 39916800,
                                            1.0 / 479001600,
                                            1.0 / 6227020800.0};
    __m512d p = _mm512_set1_pd(kInvFact[13]);
    for (int i = 12; i >= 0; --i) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(kInvFact[i]));
    return _mm512_scalef_pd(p, k);
}

// expf(x) of 16 floats through exp_pd: beyond ~±709 the double exponential saturates, and the
// float result is inf / 0 as expf's (whose own limits are ~88.7 and ~-103.9).
inline __m512 exp_ps_exact(__m512 x) {
    const __m512 lim = _mm512_set1_ps(700.0f);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_sub_ps(_mm512_setzero_ps(), lim)), lim);  // NaN: handled by the caller
    const __m512d lo = exp_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(x)));
    const __m512d hi = exp_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1)));
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
}

// The lanes of a 16-wide step that hold elements (the last step of n may be short).
inline __mmask16 step_mask(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

}  // namespace

void silu_mul_avx512(float* gate, const float* up, int64_t n) {
    // gate / (1 + expf(-gate)) * up, rounded as the generic loop rounds it.
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = step_mask(n - i);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i), u = _mm512_maskz_loadu_ps(m, up + i);
        const __mmask16 nan = _mm512_cmp_ps_mask(g, g, _CMP_UNORD_Q);
        const __m512 e = exp_ps_exact(_mm512_sub_ps(_mm512_setzero_ps(), g));
        __m512 y = _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u);
        y = _mm512_mask_mov_ps(y, nan, _mm512_add_ps(g, u));  // NaN in, NaN out
        _mm512_mask_storeu_ps(gate + i, m, y);
    }
}

void rms_norm_avx512(const float* x, const float* weight, int64_t n, float eps, float* out) {
    // The generic loop's eight partial sums in double (sum k takes elements i = k mod 8, in order)
    // as the eight lanes of one vector; a float square is exact in double, so fused or not, each
    // lane rounds as there.
    __m512d part = _mm512_setzero_pd();
    int64_t i0 = 0;
    for (; i0 + 8 <= n; i0 += 8) {
        const __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i0));
        part = _mm512_fmadd_pd(v, v, part);
    }
    double p[8];
    _mm512_storeu_pd(p, part);
    for (; i0 < n; ++i0) p[i0 % 8] += (double)x[i0] * x[i0];
    const double sum = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    const float scale = 1.0f / std::sqrt((float)(sum / n) + eps);
    const __m512 vs = _mm512_set1_ps(scale);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs), _mm512_loadu_ps(weight + i)));
    for (; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void fp32_to_fp16_avx512(const float* src, uint16_t* dst, int64_t n) {
    // The hardware conversion rounds to nearest even, as fp32_to_fp16; a NaN becomes the generic
    // loop's quiet NaN 0x7E00 (with its sign) instead of keeping its payload.
    const __m512i qnan = _mm512_set1_epi32(0x7E00), sign = _mm512_set1_epi32((int)0x80000000u);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = step_mask(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, src + i);
        __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        if (nan) {
            const __m512i s16 = _mm512_srli_epi32(_mm512_and_si512(_mm512_castps_si512(v), sign), 16);
            h = _mm256_mask_mov_epi16(h, nan, _mm512_cvtepi32_epi16(_mm512_or_si512(qnan, s16)));
        }
        _mm256_mask_storeu_epi16(dst + i, m, h);
    }
}

}  // namespace yiti::cpu
