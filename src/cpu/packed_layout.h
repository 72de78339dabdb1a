// Packed weight layouts shared by the VNNI and AMX kernels (see cpu/packed.h), and the AMX entry
// points. Internal to src/cpu.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/packed.h"

namespace yiti::cpu {

constexpr int kPR = kPackRows;

// Packed layouts, one per block of the row, for a group of 16 rows.

// Q4_K / Q5_K: qs[p][k][r][i]: low nibble = q[r][64p + 4k + i] (sub-block 2p), high nibble =
// q[r][64p + 32 + 4k + i] (sub-block 2p + 1); Q5_K adds qh[j/4 .. ][k][r][i] bits (see below).
// The eight 6-bit scales and mins of each row stay 6-bit (12 bytes a row, as in the GGUF block, so
// the packed group reads no more bytes than the file's rows), in three words w[0..2][r] laid out for
// the kernels (see packed_q45_scales.h):
//   w[0] byte j (j < 4) bits 0..5: sc[j];  w[1] byte j bits 0..5: sc[4 + j];
//   w[2] bits 4p .. 4p + 3: mn[2p] & 15, bits 16 + 4p .. 19 + 4p: mn[2p + 1] & 15 (p < 4);
//   w[0] bits 6-7 / 22-23 / 14-15 / 30-31: mn[0] / mn[1] / mn[2] / mn[3] >> 4; w[1] likewise mn[4..7].
struct PQ4K {
    uint16_t d[kPR], dmin[kPR];
    uint32_t w[3][kPR];
    uint8_t qs[4][8][kPR][4];
};
static_assert(sizeof(PQ4K) == 2304 && sizeof(PQ4K) == 16 * 144);

// Q5_K: as Q4_K plus the fifth bits: qh[k][r][i] bit j = bit 4 of q[r][32j + 4k + i].
struct PQ5K {
    uint16_t d[kPR], dmin[kPR];
    uint32_t w[3][kPR];
    uint8_t qs[4][8][kPR][4];
    uint8_t qh[8][kPR][4];
};
static_assert(sizeof(PQ5K) == 2816 && sizeof(PQ5K) == 16 * 176);

// Q6_K (u = q + 32 in 0..63), sub-blocks j (32 elements) in two sets of four, 4g + 0..3: three lines per
// set and k hold the 6-bit u of sub-blocks 4g, 4g + 1, 4g + 3 in bits 0..5 and the 2-bit parts of sub-block
// 4g + 2 in bits 6..7: q[g][k][l][r][i], element e = 4k + i of each sub-block,
//   l = 0: u[4g][e] | (u[4g + 2][e] & 3) << 6;  l = 1: u[4g + 1][e] | (u[4g + 2][e] >> 2 & 3) << 6;
//   l = 2: u[4g + 3][e] | (u[4g + 2][e] >> 4) << 6.
// A kernel reads each line once (the earlier low-nibble / high-bits split had two lines, each read two
// or four times, and two products per 64 weights). sc[k16][r] is the int8 scale of elements 16 k16 ..
struct PQ6K {
    uint16_t d[kPR];
    int8_t sc[16][kPR];
    uint8_t q[2][8][3][kPR][4];
};
static_assert(sizeof(PQ6K) == 3360);

// Q8_0, two 32-element blocks at a time (so every qs starts on a 64-byte line, as AMX tile loads
// want): qs[h][k][r][i] = q[r][32h + 4k + i] + 128 (as unsigned), d[h][r].
struct PQ80x2 {
    uint16_t d[2][kPR];  // first: the kernels then read each pair strictly forward
    uint8_t qs[2][8][kPR][4];
};
static_assert(sizeof(PQ80x2) == 1088 && sizeof(PQ80x2) % 64 == 0 && offsetof(PQ80x2, qs) % 64 == 0);

// Activations of the packed k-quant kernels: Q8_K's values, with the quants first so that every
// block's quants start on a 64-byte line (rows are multiples of 64 bytes).
struct ActQ8K {
    int8_t qs[256];
    float d;
    int16_t bsums[16];   // sums of groups of 16
    int16_t bsum32[8];   // sums of groups of 32 (the Q4_K / Q5_K sub-blocks)
    uint8_t pad[12];
};
static_assert(sizeof(ActQ8K) == 320);

// Q8_0 activations of the packed kernel: the block's scale as float and 128 * sum(qs), which turns
// the unsigned-times-signed product of (w + 128) back into w . x; quants first, 64-byte blocks.
struct ActQ80 {
    int8_t qs[32];
    float d;
    int32_t s128;
    uint8_t pad[24];
};
static_assert(sizeof(ActQ80) == 64);

// AMX-INT8 products of one packed group against nc columns (any nc; best from 16 up), bit-identical
// to the VNNI kernels: the same exact integer block sums, the same float operations per (row, column).
// Each needs amx_available() to be true.
bool amx_available();
void gemm_amx_q4_K(int64_t n, float* s, size_t ld_s, const void* group, int nr, const void* x, size_t ld_x, int nc);
void gemm_amx_q5_K(int64_t n, float* s, size_t ld_s, const void* group, int nr, const void* x, size_t ld_x, int nc);
void gemm_amx_q6_K(int64_t n, float* s, size_t ld_s, const void* group, int nr, const void* x, size_t ld_x, int nc);
void gemm_amx_q8_0(int64_t n, float* s, size_t ld_s, const void* group, int nr, const void* x, size_t ld_x, int nc);

}  // namespace yiti::cpu
