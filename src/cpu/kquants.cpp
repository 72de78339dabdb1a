// k-quant CPU kernels: the scalar variant (the reference functions behind the CpuKernels interface)
// and the run-time choice among the instruction-set builds (kquants_avx2/avx512/avx512vnni.cpp).
#include "cpu/kquants_impl.h"
#include "quant/quant.h"

namespace yiti::cpu {

namespace {

template <DType T>
void scalar_vec_dot(int64_t n, float* s, const void* w, const void* x) {
    *s = quant::ref_traits_kquants(T)->vec_dot(n, w, x);
}

template <DType T>
void scalar_gemm(int64_t n, float* s, size_t ld_s, const void* w, size_t ld_w, int nr, const void* x,
                 size_t ld_x, int nc) {
    const auto vd = quant::ref_traits_kquants(T)->vec_dot;
    for (int c = 0; c < nc; ++c)
        for (int r = 0; r < nr; ++r)
            s[(size_t)c * ld_s + r] = vd(n, (const char*)w + (size_t)r * ld_w, (const char*)x + (size_t)c * ld_x);
}

void scalar_q8_K(const float* x, void* y, int64_t n) { quant::ref_traits_kquants(DType::Q8_K)->from_float(x, y, n); }

template <DType T>
void scalar_to_float(const void* x, float* y, int64_t n) {
    quant::ref_traits_kquants(T)->to_float(x, y, n);
}

template <DType T>
constexpr CpuKernels scalar_kernels() {
    return CpuKernels{DType::Q8_K, scalar_q8_K, scalar_to_float<T>, scalar_vec_dot<T>, scalar_gemm<T>};
}

const CpuKernels k_scalar[] = {
    scalar_kernels<DType::Q2_K>(), scalar_kernels<DType::Q3_K>(), scalar_kernels<DType::Q4_K>(),
    scalar_kernels<DType::Q5_K>(), scalar_kernels<DType::Q6_K>(), scalar_kernels<DType::IQ4_XS>(),
};

const CpuKernels* scalar_table(DType t) {
    switch (t) {
        case DType::Q2_K: return &k_scalar[0];
        case DType::Q3_K: return &k_scalar[1];
        case DType::Q4_K: return &k_scalar[2];
        case DType::Q5_K: return &k_scalar[3];
        case DType::Q6_K: return &k_scalar[4];
        case DType::IQ4_XS: return &k_scalar[5];
        default: return nullptr;
    }
}

}  // namespace

const CpuKernels* cpu_kernels_kquants(DType t, Isa isa) {
    const CpuKernels* k = scalar_table(t);
    if (!k) return nullptr;
    // Never above what this CPU runs, whatever the caller asks for.
    if ((int)isa > (int)cpu_best_isa()) isa = cpu_best_isa();
    if (isa >= Isa::AVX512_VNNI) return kq::kernels_avx512vnni(t);
    if (isa >= Isa::AVX512) return kq::kernels_avx512(t);
    if (isa >= Isa::AVX2) return kq::kernels_avx2(t);
    return k;
}

}  // namespace yiti::cpu
