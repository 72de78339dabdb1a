// k-quant kernels built for avx2 (see kquants_simd.h).
#define KQ_VNNI 0
#define KQ_MAXNC 4
#define KQ_EXPORT kernels_avx2
#include "cpu/kquants_simd.h"
