// Scalar reference for the float family: F32, F16, BF16.
//
// These functions are the specification the fast kernels in src/cpu/float*.cpp are tested against.
//
// Dot products: every float type takes F32 activations (vec_dot_type = F32). The weight element is
// widened to float exactly (F16 and BF16 are subsets of F32), the product is formed exactly in
// double (24 + 24 significand bits fit in 53), and the products are summed in double, so the
// reference is the exact dot product up to the final rounding to float (and double summation
// error far below float precision).
//
// Why F32 activations for F16/BF16 and not F16/BF16 ones as ggml does: decode is bound by reading
// the weights, so converting a weight on the fly (one vcvtph2ps, or a zero-extend and shift for
// BF16) costs nothing measurable, and the activations keep full precision; the block product
// (gemm) converts each weight vector once for several activation columns, which amortises the
// conversion in prompt processing too.
#include <cstring>

#include "core/fp16.h"
#include "quant/quant.h"

namespace yiti::quant {

namespace {

// ---- F32 ----
void f32_to_float(const void* src, float* dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }
void f32_from_float(const float* src, void* dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }
float f32_vec_dot(int64_t n, const void* w, const void* x) {
    const float* a = static_cast<const float*>(w);
    const float* b = static_cast<const float*>(x);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += (double)a[i] * (double)b[i];
    return (float)sum;
}

// ---- F16: IEEE half, round to nearest even on conversion from float ----
void f16_to_float(const void* src, float* dst, int64_t n) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
}
void f16_from_float(const float* src, void* dst, int64_t n) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
}
float f16_vec_dot(int64_t n, const void* w, const void* x) {
    const uint16_t* a = static_cast<const uint16_t*>(w);
    const float* b = static_cast<const float*>(x);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += (double)fp16_to_fp32(a[i]) * (double)b[i];
    return (float)sum;
}

// ---- BF16: the top 16 bits of an F32, round to nearest even on conversion from float ----
void bf16_to_float(const void* src, float* dst, int64_t n) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
}
void bf16_from_float(const float* src, void* dst, int64_t n) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
}
float bf16_vec_dot(int64_t n, const void* w, const void* x) {
    const uint16_t* a = static_cast<const uint16_t*>(w);
    const float* b = static_cast<const float*>(x);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += (double)bf16_to_fp32(a[i]) * (double)b[i];
    return (float)sum;
}

const RefTraits k_f32 = {DType::F32, f32_to_float, f32_from_float, f32_vec_dot};
const RefTraits k_f16 = {DType::F32, f16_to_float, f16_from_float, f16_vec_dot};
const RefTraits k_bf16 = {DType::F32, bf16_to_float, bf16_from_float, bf16_vec_dot};

}  // namespace

const RefTraits* ref_traits_float(DType t) {
    switch (t) {
        case DType::F32: return &k_f32;
        case DType::F16: return &k_f16;
        case DType::BF16: return &k_bf16;
        default: return nullptr;
    }
}

}  // namespace yiti::quant
