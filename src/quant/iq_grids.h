// The i-quant grids (format constants, defined in iq_grids.cpp) and the sign rule of the i-quants.
//
// IQ2_XXS, IQ2_XS, IQ2_S: 8 elements per grid entry, byte values 8, 25, 43 (unsigned magnitudes).
// IQ3_XXS, IQ3_S: 4 elements per grid entry, unsigned magnitudes (IQ3_XXS 4..62, IQ3_S 1..15).
// IQ1_S, IQ1_M: 8 elements per grid entry, signed byte values -1, 0, +1.
#pragma once
#include <cstdint>

namespace yiti {

extern const uint64_t k_iq2xxs_grid[256];
extern const uint64_t k_iq2xs_grid[512];
extern const uint64_t k_iq2s_grid[1024];
extern const uint32_t k_iq3xxs_grid[256];
extern const uint32_t k_iq3s_grid[512];
extern const uint64_t k_iq1s_grid[2048];

// IQ2_XXS, IQ2_XS and IQ3_XXS store the signs of 8 elements in 7 bits: bit k (k < 7) is the sign of
// element k and the sign of element 7 makes the number of negative elements even (ggml's
// ksigns_iq2xs table). Returns the full 8-bit mask (bit k set = element k negative).
constexpr uint8_t iq_signs8(uint32_t s7) {
    s7 &= 127;
    return (uint8_t)(s7 | ((uint32_t)__builtin_parity(s7) << 7));
}

}  // namespace yiti
