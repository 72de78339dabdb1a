#include "cpu/packed.h"

#include <cstdlib>
#include <cstring>

#include "cpu/kernels.h"

namespace yiti::cpu {

const PackedKernels* packed_kernels(DType t) {
    static const bool enabled = [] {
        const char* e = getenv("YITI_NO_REPACK");
        return !(e && *e && strcmp(e, "0") != 0);
    }();
    if (!enabled) return nullptr;
    if ((int)cpu_best_isa() >= (int)Isa::AVX512_VNNI) return packed_kernels_avx512vnni(t);
    return nullptr;
}

void pack_matrix(const PackedKernels& pk, const void* src, size_t ld_src, int64_t n_rows, void* dst, int64_t n_in) {
    const size_t gb = pk.group_bytes(n_in);
    for (int64_t r0 = 0, g = 0; r0 < n_rows; r0 += kPackRows, ++g) {
        const int nr = (int)(n_rows - r0 < kPackRows ? n_rows - r0 : kPackRows);
        pk.pack_group((const uint8_t*)src + (size_t)r0 * ld_src, ld_src, nr, (uint8_t*)dst + (size_t)g * gb, n_in);
    }
}

}  // namespace yiti::cpu
