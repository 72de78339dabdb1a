// k-quant kernels built for avx512vnni (see kquants_simd.h).
#define KQ_VNNI 1
#define KQ_MAXNC 8
#define KQ_EXPORT kernels_avx512vnni
#include "cpu/kquants_simd.h"
