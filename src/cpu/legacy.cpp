// Legacy quant family (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL): the scalar variant and the dispatch.
// This file is compiled without ISA flags; the SIMD variants live in legacy_avx2.cpp,
// legacy_avx512.cpp and legacy_avx512vnni.cpp (all generated from legacy_simd.h).
//
// vec_dot_type: Q8_0 for Q4_0, Q5_0, Q8_0, IQ4_NL; Q8_1 for Q4_1, Q5_1 (see quant/ref_legacy.cpp).
// The scalar variant is the reference itself.
#include "cpu/legacy_impl.h"
#include "quant/quant.h"

namespace yiti::cpu {

namespace {

template <DType T>
const quant::RefTraits& ref() {
    static const quant::RefTraits* r = quant::ref_traits_legacy(T);
    return *r;
}

template <DType T>
void s_to_float(const void* x, float* y, int64_t n) {
    ref<T>().to_float(x, y, n);
}

template <DType A>  // A: the activation type
void s_from_float(const float* x, void* y, int64_t n) {
    ref<A>().from_float(x, y, n);
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

template <DType T, DType VDT>
constexpr CpuKernels scalar_kernels() {
    return {VDT, s_from_float<VDT>, s_to_float<T>, s_vec_dot<T>, s_gemm<T>};
}

const CpuKernels k_q4_0 = scalar_kernels<DType::Q4_0, DType::Q8_0>();
const CpuKernels k_q4_1 = scalar_kernels<DType::Q4_1, DType::Q8_1>();
const CpuKernels k_q5_0 = scalar_kernels<DType::Q5_0, DType::Q8_0>();
const CpuKernels k_q5_1 = scalar_kernels<DType::Q5_1, DType::Q8_1>();
const CpuKernels k_q8_0 = scalar_kernels<DType::Q8_0, DType::Q8_0>();
const CpuKernels k_iq4_nl = scalar_kernels<DType::IQ4_NL, DType::Q8_0>();

const CpuKernels* scalar_table(DType t) {
    switch (t) {
        case DType::Q4_0: return &k_q4_0;
        case DType::Q4_1: return &k_q4_1;
        case DType::Q5_0: return &k_q5_0;
        case DType::Q5_1: return &k_q5_1;
        case DType::Q8_0: return &k_q8_0;
        case DType::IQ4_NL: return &k_iq4_nl;
        default: return nullptr;
    }
}

}  // namespace

const CpuKernels* cpu_kernels_legacy(DType t, Isa isa) {
    const CpuKernels* scalar = scalar_table(t);
    if (!scalar) return nullptr;
    if (isa >= Isa::AVX512_VNNI)
        if (const CpuKernels* k = legacy_kernels_avx512vnni(t)) return k;
    if (isa >= Isa::AVX512)
        if (const CpuKernels* k = legacy_kernels_avx512(t)) return k;
    if (isa >= Isa::AVX2)
        if (const CpuKernels* k = legacy_kernels_avx2(t)) return k;
    return scalar;
}

}  // namespace yiti::cpu
