// k-quant kernels built for avx512 (see kquants_simd.h).
#define KQ_VNNI 0
#define KQ_MAXNC 8
#define KQ_EXPORT kernels_avx512
#include "cpu/kquants_simd.h"
