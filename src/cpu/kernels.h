// Fast CPU kernels per tensor type, chosen at run time by the CPU's instruction sets.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace yiti::cpu {

// Instruction-set levels, in increasing order. AVX512 means F+BW+VL+DQ; AVX512_VNNI adds VNNI
// (and BF16 where the kernel needs it, checked by cpu_has_avx512_bf16()).
enum class Isa : int { Scalar = 0, AVX2 = 1, AVX512 = 2, AVX512_VNNI = 3 };

Isa cpu_best_isa();            // what this CPU supports (YITI_ISA=scalar|avx2|avx512|avx512_vnni lowers it)
bool cpu_has_avx512_bf16();
const char* isa_name(Isa isa);

struct CpuKernels {
    DType vec_dot_type;  // activation format of vec_dot/gemm
    // Quantize activations (F32) into vec_dot_type; null when vec_dot_type is F32.
    void (*from_float)(const float* x, void* y, int64_t n);
    // Dequantize a weight row to F32.
    void (*to_float)(const void* x, float* y, int64_t n);
    // *s = dot(weight row w, activation row x), n elements.
    void (*vec_dot)(int64_t n, float* s, const void* w, const void* x);
    // Optional block product (null = driver loops vec_dot): for r < nr, c < nc,
    //   s[c * ld_s + r] = dot(w + r * ld_w bytes, x + c * ld_x bytes).
    // Lets a kernel read each weight row once for several activation columns.
    void (*gemm)(int64_t n, float* s, size_t ld_s, const void* w, size_t ld_w, int nr, const void* x,
                 size_t ld_x, int nc);
};

// Kernels for type t at the best level <= isa; nullptr if the type has no CPU kernels.
const CpuKernels* cpu_kernels(DType t, Isa isa);
inline const CpuKernels* cpu_kernels(DType t) { return cpu_kernels(t, cpu_best_isa()); }

// Family tables; each returns nullptr for types it does not own. Each picks the best variant <= isa.
const CpuKernels* cpu_kernels_float(DType t, Isa isa);    // F32, F16, BF16
const CpuKernels* cpu_kernels_legacy(DType t, Isa isa);   // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL
const CpuKernels* cpu_kernels_kquants(DType t, Isa isa);  // Q2_K..Q6_K, IQ4_XS
const CpuKernels* cpu_kernels_iquants(DType t, Isa isa);  // IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S

}  // namespace yiti::cpu
