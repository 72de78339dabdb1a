// i-quant kernels built for avx512 (see iquants_simd.h).
#define IQ_AVX512 1
#define IQ_VNNI 0
#define IQ_MAXNC 8
#define IQ_EXPORT kernels_avx512
#include "cpu/iquants_simd.h"
