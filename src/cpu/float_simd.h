// SIMD kernels of the float family (F32, F16, BF16 weights; F32 activations), written once and
// compiled twice:
//   float_avx2.cpp    256-bit vectors (F16 via F16C vcvtph2ps)
//   float_avx512.cpp  512-bit vectors, masked loads for the row tail
// Include it ONLY from those files. Everything here has internal linkage (anonymous namespace), so
// the differently compiled copies can never be merged by the linker.
//
// Why F32 activations (vec_dot_type = F32) for F16 and BF16 weights: a weight vector is widened to
// F32 exactly (vcvtph2ps, or zero-extend + shift for BF16) and multiplied with fused multiply-adds.
// Decode reads every weight once and is bound by memory bandwidth, so the conversion is free there;
// in the block product (gemm) each converted weight vector serves up to kTileCols activation
// columns, which amortises it in prompt processing too. Activations keep full F32 precision (no
// F16/BF16 rounding of activations as in ggml). AVX512-BF16 dot products (vdpbf16ps) would need
// BF16 activations and flush denormals, so they are not used.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 intrinsics trip these warnings on their own _mm512_undefined_*() helpers
// (GCC bug 105593, fixed in 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/fp16.h"
#include "cpu/kernels.h"

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "float_simd.h must be compiled with AVX2, FMA and F16C"
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#define YF_512 1
#else
#define YF_512 0
#endif

#define YF_INLINE inline __attribute__((always_inline))

namespace yiti::cpu {
namespace {
namespace fsimd {

#if YF_512
using VF = __m512;
constexpr int L = 16;  // floats per vector
constexpr int kTileRows = 4, kTileCols = 4, kDecodeRows = 4;
YF_INLINE VF fzero() { return _mm512_setzero_ps(); }
YF_INLINE VF fma_(VF a, VF b, VF c) { return _mm512_fmadd_ps(a, b, c); }
YF_INLINE VF add(VF a, VF b) { return _mm512_add_ps(a, b); }
YF_INLINE VF ldx(const float* p) { return _mm512_loadu_ps(p); }
YF_INLINE VF ldx_tail(const float* p, int cnt) { return _mm512_maskz_loadu_ps((__mmask16)((1u << cnt) - 1), p); }
YF_INLINE float hsum(VF v) { return _mm512_reduce_add_ps(v); }
#else
using VF = __m256;
constexpr int L = 8;
constexpr int kTileRows = 2, kTileCols = 4, kDecodeRows = 4;
YF_INLINE VF fzero() { return _mm256_setzero_ps(); }
YF_INLINE VF fma_(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }
YF_INLINE VF add(VF a, VF b) { return _mm256_add_ps(a, b); }
YF_INLINE VF ldx(const float* p) { return _mm256_loadu_ps(p); }
YF_INLINE float hsum(VF v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

// ------------------------------------------------------------------ weight formats
// load(p, i): L weights from element i as floats; scalar(p, i): one weight;
// load_tail(p, i, cnt) (512-bit only): cnt < L weights, the other lanes 0.

struct PF32 {
    using T = float;
    static YF_INLINE float scalar(const T* p, int64_t i) { return p[i]; }
#if YF_512
    static YF_INLINE VF load(const T* p, int64_t i) { return _mm512_loadu_ps(p + i); }
    static YF_INLINE VF load_tail(const T* p, int64_t i, int cnt) { return ldx_tail(p + i, cnt); }
#else
    static YF_INLINE VF load(const T* p, int64_t i) { return _mm256_loadu_ps(p + i); }
#endif
};

struct PF16 {
    using T = uint16_t;
    static YF_INLINE float scalar(const T* p, int64_t i) { return _cvtsh_ss(p[i]); }
#if YF_512
    static YF_INLINE VF load(const T* p, int64_t i) {
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(p + i)));
    }
    static YF_INLINE VF load_tail(const T* p, int64_t i, int cnt) {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)((1u << cnt) - 1), p + i));
    }
#else
    static YF_INLINE VF load(const T* p, int64_t i) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(p + i))); }
#endif
};

struct PBF16 {
    using T = uint16_t;
    static YF_INLINE float scalar(const T* p, int64_t i) { return bf16_to_fp32(p[i]); }
#if YF_512
    static YF_INLINE VF load(const T* p, int64_t i) {
        const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(p + i)));
        return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
    }
    static YF_INLINE VF load_tail(const T* p, int64_t i, int cnt) {
        const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16((__mmask16)((1u << cnt) - 1), p + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
    }
#else
    static YF_INLINE VF load(const T* p, int64_t i) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(p + i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
#endif
};

// ------------------------------------------------------------------ dot products

// One weight row against one activation row, four independent accumulators.
template <class P>
void vec_dot(int64_t n, float* s, const void* wv, const void* xv) {
    const typename P::T* w = (const typename P::T*)wv;
    const float* x = (const float*)xv;
    VF a0 = fzero(), a1 = fzero(), a2 = fzero(), a3 = fzero();
    int64_t i = 0;
    for (; i + 4 * L <= n; i += 4 * L) {
        a0 = fma_(P::load(w, i), ldx(x + i), a0);
        a1 = fma_(P::load(w, i + L), ldx(x + i + L), a1);
        a2 = fma_(P::load(w, i + 2 * L), ldx(x + i + 2 * L), a2);
        a3 = fma_(P::load(w, i + 3 * L), ldx(x + i + 3 * L), a3);
    }
    for (; i + L <= n; i += L) a0 = fma_(P::load(w, i), ldx(x + i), a0);
#if YF_512
    if (i < n) {
        const int cnt = (int)(n - i);
        a1 = fma_(P::load_tail(w, i, cnt), ldx_tail(x + i, cnt), a1);
        i = n;
    }
#endif
    float sum = hsum(add(add(a0, a1), add(a2, a3)));
    for (; i < n; ++i) sum += P::scalar(w, i) * x[i];
    *s = sum;
}

// s[c * lds + r] = dot(row r, column c) for r < RM, c < RN.
template <class P, int RM, int RN>
void tile(int64_t n, const uint8_t* w, size_t ldw, const uint8_t* x, size_t ldx_, float* s, size_t lds) {
    const typename P::T* wr[RM];
    const float* xc[RN];
    for (int r = 0; r < RM; ++r) wr[r] = (const typename P::T*)(w + r * ldw);
    for (int c = 0; c < RN; ++c) xc[c] = (const float*)(x + c * ldx_);
    VF acc[RM][RN];
    for (int r = 0; r < RM; ++r)
        for (int c = 0; c < RN; ++c) acc[r][c] = fzero();
    int64_t i = 0;
    for (; i + L <= n; i += L) {
        VF wv[RM];
        for (int r = 0; r < RM; ++r) wv[r] = P::load(wr[r], i);
        for (int c = 0; c < RN; ++c) {
            const VF xv = ldx(xc[c] + i);
            for (int r = 0; r < RM; ++r) acc[r][c] = fma_(wv[r], xv, acc[r][c]);
        }
    }
#if YF_512
    if (i < n) {
        const int cnt = (int)(n - i);
        VF wv[RM];
        for (int r = 0; r < RM; ++r) wv[r] = P::load_tail(wr[r], i, cnt);
        for (int c = 0; c < RN; ++c) {
            const VF xv = ldx_tail(xc[c] + i, cnt);
            for (int r = 0; r < RM; ++r) acc[r][c] = fma_(wv[r], xv, acc[r][c]);
        }
        i = n;
    }
#endif
    for (int r = 0; r < RM; ++r)
        for (int c = 0; c < RN; ++c) {
            float sum = hsum(acc[r][c]);
            for (int64_t j = i; j < n; ++j) sum += P::scalar(wr[r], j) * xc[c][j];
            s[c * lds + r] = sum;
        }
}

using TileFn = void (*)(int64_t, const uint8_t*, size_t, const uint8_t*, size_t, float*, size_t);

template <class P>
struct Tiles {
    static constexpr TileFn fn[4][4] = {
        {tile<P, 1, 1>, tile<P, 1, 2>, tile<P, 1, 3>, tile<P, 1, 4>},
        {tile<P, 2, 1>, tile<P, 2, 2>, tile<P, 2, 3>, tile<P, 2, 4>},
        {tile<P, 3, 1>, tile<P, 3, 2>, tile<P, 3, 3>, tile<P, 3, 4>},
        {tile<P, 4, 1>, tile<P, 4, 2>, tile<P, 4, 3>, tile<P, 4, 4>},
    };
};
static_assert(kTileRows <= 4 && kTileCols <= 4 && kDecodeRows <= 4);

template <class P>
void gemm(int64_t n, float* s, size_t lds, const void* w, size_t ldw, int nr, const void* x, size_t ldx_, int nc) {
    const uint8_t* wb = (const uint8_t*)w;
    const uint8_t* xb = (const uint8_t*)x;
    const int rmax = nc == 1 ? kDecodeRows : kTileRows;
    for (int r0 = 0; r0 < nr; r0 += rmax) {
        const int rm = std::min(rmax, nr - r0);
        for (int c0 = 0; c0 < nc; c0 += kTileCols) {
            const int rn = std::min(kTileCols, nc - c0);
            Tiles<P>::fn[rm - 1][rn - 1](n, wb + r0 * ldw, ldw, xb + c0 * ldx_, ldx_, s + c0 * lds + r0, lds);
        }
    }
}

// ------------------------------------------------------------------ conversion to F32 (exact)

template <class P>
void to_float(const void* src, float* y, int64_t n) {
    const typename P::T* w = (const typename P::T*)src;
    int64_t i = 0;
#if YF_512
    for (; i + L <= n; i += L) _mm512_storeu_ps(y + i, P::load(w, i));
    if (i < n) {
        const int cnt = (int)(n - i);
        _mm512_mask_storeu_ps(y + i, (__mmask16)((1u << cnt) - 1), P::load_tail(w, i, cnt));
        i = n;
    }
#else
    for (; i + L <= n; i += L) _mm256_storeu_ps(y + i, P::load(w, i));
#endif
    for (; i < n; ++i) y[i] = P::scalar(w, i);
}

void f32_to_float(const void* src, float* y, int64_t n) { memcpy(y, src, (size_t)n * sizeof(float)); }

// ------------------------------------------------------------------ tables

const CpuKernels k_f32 = {DType::F32, nullptr, f32_to_float, vec_dot<PF32>, gemm<PF32>};
const CpuKernels k_f16 = {DType::F32, nullptr, to_float<PF16>, vec_dot<PF16>, gemm<PF16>};
const CpuKernels k_bf16 = {DType::F32, nullptr, to_float<PBF16>, vec_dot<PBF16>, gemm<PBF16>};

const CpuKernels* table(DType t) {
    switch (t) {
        case DType::F32: return &k_f32;
        case DType::F16: return &k_f16;
        case DType::BF16: return &k_bf16;
        default: return nullptr;
    }
}

}  // namespace fsimd
}  // namespace
}  // namespace yiti::cpu
