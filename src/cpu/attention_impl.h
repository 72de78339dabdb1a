// Vectorized operator variants (internal to src/cpu; ops.cpp dispatches to them at run time).
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/ops.h"

namespace yiti::cpu {

// AVX-512 attention (attention_avx512.cpp); false when the shapes or cache type need the generic path.
bool attention_avx512(ThreadPool& pool, const AttnParams& p, kv::KVCache& cache, int il,
                      const std::vector<AttnSeq>& seqs, const float* q, float* out);
bool attention_dense_avx512(ThreadPool& pool, const AttnParams& p, const DenseKV& kv, int64_t n_tok, int32_t pos0,
                            const float* q, float* out);
void axpy_avx512(float a, const float* x, float* y, int64_t n);
// The generic loops (ops.cpp) and their AVX-512 forms (ops_avx512.cpp): rms_norm gives the same bits;
// SiLU rounds its exponential correctly, where glibc's expf (the generic loop) is off by one ulp on a
// few inputs in 100000.
void silu_mul_generic(float* gate, const float* up, int64_t n);
void rms_norm_generic(const float* x, const float* weight, int64_t n, float eps, float* out);
void silu_mul_avx512(float* gate, const float* up, int64_t n);
void rms_norm_avx512(const float* x, const float* weight, int64_t n, float eps, float* out);
// F32 -> F16 with fp32_to_fp16's results (rounding to nearest even; NaN -> 0x7E00 with its sign).
void fp32_to_fp16_avx512(const float* src, uint16_t* dst, int64_t n);

}  // namespace yiti::cpu
