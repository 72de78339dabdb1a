// i-quant CPU kernels: the scalar variant (the reference functions behind the CpuKernels interface)
// and the run-time choice among the instruction-set builds (iquants_avx2/avx512/avx512vnni.cpp).
// Activations are Q8_K, quantized by the k-quant family's quantizer of the same level (the same
// function pointer, so a product mixing k-quants and i-quants on one input quantizes it once).
#include "cpu/iquants_impl.h"
#include "quant/quant.h"

namespace yiti::cpu {

namespace {

constexpr DType k_types[] = {DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S, DType::IQ3_XXS,
                             DType::IQ3_S,   DType::IQ1_S,  DType::IQ1_M};
constexpr int k_ntypes = sizeof(k_types) / sizeof(k_types[0]);

int type_index(DType t) {
    for (int i = 0; i < k_ntypes; ++i)
        if (k_types[i] == t) return i;
    return -1;
}

template <DType T>
void scalar_vec_dot(int64_t n, float* s, const void* w, const void* x) {
    *s = quant::ref_traits_iquants(T)->vec_dot(n, w, x);
}

template <DType T>
void scalar_gemm(int64_t n, float* s, size_t ld_s, const void* w, size_t ld_w, int nr, const void* x,
                 size_t ld_x, int nc) {
    const auto vd = quant::ref_traits_iquants(T)->vec_dot;
    for (int c = 0; c < nc; ++c)
        for (int r = 0; r < nr; ++r)
            s[(size_t)c * ld_s + r] = vd(n, (const char*)w + (size_t)r * ld_w, (const char*)x + (size_t)c * ld_x);
}

template <DType T>
void scalar_to_float(const void* x, float* y, int64_t n) {
    quant::ref_traits_iquants(T)->to_float(x, y, n);
}

template <DType T>
constexpr CpuKernels scalar_kernels() {
    return CpuKernels{DType::Q8_K, nullptr, scalar_to_float<T>, scalar_vec_dot<T>, scalar_gemm<T>};
}

struct Tables {
    CpuKernels k[4][k_ntypes];  // [Isa][type]
    Tables() {
        const CpuKernels scalar[k_ntypes] = {
            scalar_kernels<DType::IQ2_XXS>(), scalar_kernels<DType::IQ2_XS>(), scalar_kernels<DType::IQ2_S>(),
            scalar_kernels<DType::IQ3_XXS>(), scalar_kernels<DType::IQ3_S>(),  scalar_kernels<DType::IQ1_S>(),
            scalar_kernels<DType::IQ1_M>(),
        };
        const Isa best = cpu_best_isa();
        for (int l = 0; l <= (int)Isa::AVX512_VNNI; ++l) {
            const Isa isa = (Isa)l;
            for (int i = 0; i < k_ntypes; ++i) {
                const CpuKernels* simd = nullptr;
                if ((int)isa <= (int)best) {
                    if (isa == Isa::AVX512_VNNI) simd = iq::kernels_avx512vnni(k_types[i]);
                    else if (isa == Isa::AVX512) simd = iq::kernels_avx512(k_types[i]);
                    else if (isa == Isa::AVX2) simd = iq::kernels_avx2(k_types[i]);
                }
                k[l][i] = simd ? *simd : scalar[i];
                // The Q8_K quantizer of the same level (never above what this CPU runs).
                const Isa qisa = (int)isa <= (int)best ? isa : best;
                k[l][i].from_float = cpu_kernels_kquants(DType::Q4_K, qisa)->from_float;
            }
        }
    }
};

}  // namespace

const CpuKernels* cpu_kernels_iquants(DType t, Isa isa) {
    const int i = type_index(t);
    if (i < 0) return nullptr;
    static const Tables tables;
    // Never above what this CPU runs, whatever the caller asks for.
    if ((int)isa > (int)cpu_best_isa()) isa = cpu_best_isa();
    return &tables.k[(int)isa][i];
}

}  // namespace yiti::cpu
