#include "cpu/kernels.h"

#include <cstdlib>
#include <cstring>

namespace yiti::cpu {

static Isa detect_isa() {
    __builtin_cpu_init();
    Isa isa = Isa::Scalar;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        isa = Isa::AVX2;
    if (isa == Isa::AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        isa = Isa::AVX512;
    if (isa == Isa::AVX512 && __builtin_cpu_supports("avx512vnni")) isa = Isa::AVX512_VNNI;
    if (const char* env = getenv("YITI_ISA")) {
        Isa want = isa;
        if (!strcmp(env, "scalar")) want = Isa::Scalar;
        else if (!strcmp(env, "avx2")) want = Isa::AVX2;
        else if (!strcmp(env, "avx512")) want = Isa::AVX512;
        else if (!strcmp(env, "avx512_vnni")) want = Isa::AVX512_VNNI;
        if ((int)want < (int)isa) isa = want;
    }
    return isa;
}

Isa cpu_best_isa() {
    static const Isa isa = detect_isa();
    return isa;
}

bool cpu_has_avx512_bf16() {
    static const bool has = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512bf16") != 0 && (int)cpu_best_isa() >= (int)Isa::AVX512_VNNI;
    }();
    return has;
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::AVX2: return "avx2";
        case Isa::AVX512: return "avx512";
        case Isa::AVX512_VNNI: return "avx512_vnni";
    }
    return "?";
}

const CpuKernels* cpu_kernels(DType t, Isa isa) {
    if (auto* k = cpu_kernels_float(t, isa)) return k;
    if (auto* k = cpu_kernels_legacy(t, isa)) return k;
    if (auto* k = cpu_kernels_kquants(t, isa)) return k;
    if (auto* k = cpu_kernels_iquants(t, isa)) return k;
    return nullptr;
}

}  // namespace yiti::cpu
