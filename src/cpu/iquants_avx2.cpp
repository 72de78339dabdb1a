// i-quant kernels built for avx2 (see iquants_simd.h).
#define IQ_AVX512 0
#define IQ_VNNI 0
#define IQ_MAXNC 4
#define IQ_EXPORT kernels_avx2
#include "cpu/iquants_simd.h"
