// Float family (F32, F16, BF16): the scalar variant and the dispatch. This file is compiled without
// ISA flags; the SIMD variants live in float_avx2.cpp and float_avx512.cpp (both generated from
// float_simd.h). AVX512_VNNI adds nothing for these types and uses the AVX-512 variant.
//
// vec_dot_type is F32 for all three (see quant/ref_float.cpp and float_simd.h for why), so
// from_float is null. The scalar variant is the reference itself.
#include "cpu/float_impl.h"
#include "quant/quant.h"

namespace yiti::cpu {

namespace {

template <DType T>
const quant::RefTraits& ref() {
    static const quant::RefTraits* r = quant::ref_traits_float(T);
    return *r;
}

template <DType T>
void s_to_float(const void* x, float* y, int64_t n) {
    ref<T>().to_float(x, y, n);
}

template <DType T>
void s_vec_dot(int64_t n, float* s, const void* w, const void* x) {
    *s = ref<T>().vec_dot(n, w, x);
}

template <DType T>
void s_gemm(int64_t n, float* s, size_t ld_s, const void* w, size_t ld_w, int nr, const void* x, size_t ld_x,
            int nc) {
    const auto vd = ref<T>().vec_dot;
    for (int c = 0; c < nc; ++c)
        for (int r = 0; r < nr; ++r)
            s[c * ld_s + r] = vd(n, (const uint8_t*)w + r * ld_w, (const uint8_t*)x + c * ld_x);
}

template <DType T>
constexpr CpuKernels scalar_kernels() {
    return {DType::F32, nullptr, s_to_float<T>, s_vec_dot<T>, s_gemm<T>};
}

const CpuKernels k_f32 = scalar_kernels<DType::F32>();
const CpuKernels k_f16 = scalar_kernels<DType::F16>();
const CpuKernels k_bf16 = scalar_kernels<DType::BF16>();

const CpuKernels* scalar_table(DType t) {
    switch (t) {
        case DType::F32: return &k_f32;
        case DType::F16: return &k_f16;
        case DType::BF16: return &k_bf16;
        default: return nullptr;
    }
}

}  // namespace

const CpuKernels* cpu_kernels_float(DType t, Isa isa) {
    const CpuKernels* scalar = scalar_table(t);
    if (!scalar) return nullptr;
    if (isa >= Isa::AVX512)
        if (const CpuKernels* k = float_kernels_avx512(t)) return k;
    if (isa >= Isa::AVX2)
        if (const CpuKernels* k = float_kernels_avx2(t)) return k;
    return scalar;
}

}  // namespace yiti::cpu
