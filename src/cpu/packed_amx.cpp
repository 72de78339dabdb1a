// AMX-INT8 kernels for packed weights (prompt processing): one group of 16 weight rows against many
// activation columns, 16 columns per tile.
//
// Tiles compute C[column][row] += sum_k x[column][k] * w'[k][row] over 64 elements at a time, with
// the packed layout's [4-element quad][16 rows][4 bytes] as the B operand. The k-quants' sub-block
// scales are folded into the weights first, w' = sc * q, which does not fit a byte, so w' is split
// into planes (Q4_K/Q5_K: w' = lo + 32 hi, plus a plane holding each element's sub-block min;
// Q6_K: w' = lo + 64 hi): every 256-element block then needs one integer combination and the same
// float operations as the VNNI kernel (exact block sums, acc = fma(d * dx, isum, acc), then for the
// mins acc = fma(-(dmin * dx), imin, acc)), so the two give bit-identical results. The planes of a
// group are built once per call and reused for every column tile.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,f16c,fma,amx-tile,amx-int8")
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/packed_layout.h"
#include "cpu/packed_q45_scales.h"
#include "quant/blocks.h"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace yiti::cpu {

namespace {

// ------------------------------------------------------------------------------------------------
// Availability and tile configuration

bool cpuid_amx() {
    unsigned a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    const bool tile = (d >> 24) & 1, int8 = (d >> 25) & 1;
    if (!tile || !int8) return false;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!((c >> 27) & 1)) return false;  // OSXSAVE
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((lo >> 17) & 3) == 3;  // XTILECFG and XTILEDATA enabled by the OS
}

// Linux hands out the tile data state only on request (arch_prctl ARCH_REQ_XCOMP_PERM).
bool request_amx() {
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

struct TileConfig {
    uint8_t palette_id = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

// Config 1 (k-quants): every tile 16 rows x 64 bytes.
// Config 2 (Q8_0): C tiles 0-2 16 x 64, A tile 3 16 x 32 (32 elements of 16 columns), B tiles 4-6 8 x 64.
enum Cfg { kCfgNone = 0, kCfgK = 1, kCfgQ80 = 2 };
thread_local int t_cfg = kCfgNone;

void set_config(int which) {
    if (t_cfg == which) return;
    TileConfig c;
    for (int t = 0; t < 8; ++t) {
        c.rows[t] = 16;
        c.colsb[t] = 64;
    }
    if (which == kCfgQ80) {
        c.colsb[3] = c.colsb[7] = 32;
        for (int t = 4; t < 7; ++t) c.rows[t] = 8;
    }
    _tile_loadconfig(&c);
    t_cfg = which;
}

inline __m512 load_f16x16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
inline __mmask16 row_mask(int nr) { return (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1); }

// Per-thread scratch: the group's planes and a zero-padded copy of a partial column tile.
// (AMX tile loads are several times slower from addresses that are not 64-byte aligned.)
struct AlignedBuf {
    uint8_t* p = nullptr;
    size_t n = 0;
    uint8_t* get(size_t bytes) {
        if (bytes > n) {
            free(p);
            n = (bytes + 4095) / 4096 * 4096;
            p = (uint8_t*)aligned_alloc(64, n);
        }
        return p;
    }
    ~AlignedBuf() { free(p); }
};
struct Scratch {
    AlignedBuf planes, xpad;
    uint8_t* get_planes(size_t n) { return planes.get(n); }
};
thread_local Scratch t_scratch;

// The A operand rows (activation columns c0 .. c0 + 15): in place when all 16 exist, else copied into
// a zero-padded buffer.
const uint8_t* column_tile(const void* x, size_t ld_x, int c0, int nc) {
    const uint8_t* base = (const uint8_t*)x + (size_t)c0 * ld_x;
    if (nc - c0 >= 16) return base;
    const int cn = nc - c0;
    uint8_t* pad = t_scratch.xpad.get(16 * ld_x);
    memcpy(pad, base, (size_t)cn * ld_x);
    memset(pad + (size_t)cn * ld_x, 0, (size_t)(16 - cn) * ld_x);
    return pad;
}

// Bytes (s, 0, s, 0) / (0, s, 0, s) for each of the 16 rows' 4 bytes: maddubs multipliers that give
// the even / odd bytes' products as int16.
inline void row_multipliers_lanes(__m512i d, __m512i* even, __m512i* odd) {
    const __m512i b = _mm512_and_si512(d, _mm512_set1_epi32(0xFF));
    *even = _mm512_or_si512(b, _mm512_slli_epi32(b, 16));  // (s, 0, s, 0)
    *odd = _mm512_slli_epi32(*even, 8);                      // (0, s, 0, s)
}
inline void row_multipliers(const void* sc16, __m512i* even, __m512i* odd, bool sign_extend) {
    const __m128i s = _mm_loadu_si128((const __m128i*)sc16);
    row_multipliers_lanes(sign_extend ? _mm512_cvtepi8_epi32(s) : _mm512_cvtepu8_epi32(s), even, odd);
}

// Every row's byte (int32 lanes, 0..255) repeated 4 times: the min plane of a sub-block.
inline __m512i row_bytes4(__m512i d) { return _mm512_mullo_epi32(d, _mm512_set1_epi32(0x01010101)); }

// w' = q * sc (q unsigned bytes, even/odd multipliers from row_multipliers) split into
// lo = w' & lo_mask, hi = w' >> shift (arithmetic), both as bytes in the original order.
template <int Shift>
inline void split_product(__m512i q, __m512i even, __m512i odd, __m512i offset, __m512i* lo, __m512i* hi) {
    __m512i pe = _mm512_maddubs_epi16(q, even);
    __m512i po = _mm512_maddubs_epi16(q, odd);
    pe = _mm512_sub_epi16(pe, offset);  // offset: int16 lanes, the same for both bytes' products
    po = _mm512_sub_epi16(po, offset);
    const __m512i m = _mm512_set1_epi16((1 << Shift) - 1);
    const __m512i mb = _mm512_set1_epi16(0xFF);
    *lo = _mm512_or_si512(_mm512_and_si512(pe, m), _mm512_slli_epi16(_mm512_and_si512(po, m), 8));
    *hi = _mm512_or_si512(_mm512_and_si512(_mm512_srai_epi16(pe, Shift), mb), _mm512_slli_epi16(_mm512_srai_epi16(po, Shift), 8));
}

// ------------------------------------------------------------------------------------------------
// Q4_K / Q5_K: planes per block: [3][4 steps][16 quads][64 bytes] = 12 KB (lo, hi, min).

constexpr size_t kPlaneStep = 16 * 64;        // one B tile
constexpr size_t kKBlockPlanes3 = 3 * 4 * kPlaneStep;
constexpr size_t kKBlockPlanes2 = 2 * 4 * kPlaneStep;

template <bool Q5>
void convert_q45(const uint8_t* group, int64_t nb, uint8_t* planes) {
    using P = std::conditional_t<Q5, PQ5K, PQ4K>;
    const P* B = (const P*)group;
    const __m512i m4 = _mm512_set1_epi8(0x0F), zero = _mm512_setzero_si512();
    for (int64_t i = 0; i < nb; ++i) {
        const P& b = B[i];
        uint8_t* pl = planes + (size_t)i * kKBlockPlanes3;
        const Q45Scales scl(b.w);
        const __m512i sc[8] = {scl.sc<0>(), scl.sc<1>(), scl.sc<2>(), scl.sc<3>(),
                               scl.sc<4>(), scl.sc<5>(), scl.sc<6>(), scl.sc<7>()};
        const __m512i mp[4] = {scl.mn_pair<0>(), scl.mn_pair<1>(), scl.mn_pair<2>(), scl.mn_pair<3>()};
        const __m512i m16 = _mm512_set1_epi32(0xFFFF);
        for (int p = 0; p < 4; ++p) {
            __m512i ea, oa, eb, ob;
            row_multipliers_lanes(sc[2 * p], &ea, &oa);
            row_multipliers_lanes(sc[2 * p + 1], &eb, &ob);
            // mn[2p] and mn[2p + 1]: the low and high halves of the step's min pair.
            const __m512i ma = row_bytes4(_mm512_and_si512(mp[p], m16)), mb = row_bytes4(_mm512_srli_epi32(mp[p], 16));
            uint8_t* lo_p = pl + (size_t)p * kPlaneStep;
            uint8_t* hi_p = pl + (size_t)(4 + p) * kPlaneStep;
            uint8_t* mn_p = pl + (size_t)(8 + p) * kPlaneStep;
            for (int k = 0; k < 8; ++k) {
                const __m512i v = _mm512_loadu_si512(b.qs[p][k]);
                __m512i qa = _mm512_and_si512(v, m4);
                __m512i qb = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                if constexpr (Q5) {
                    const __m512i h = _mm512_loadu_si512(b.qh[k]);
                    const __m512i b4 = _mm512_set1_epi8(0x10);
                    qa = _mm512_or_si512(qa, _mm512_and_si512(_mm512_rorv_epi32(h, _mm512_set1_epi32(2 * p + 28)), b4));
                    qb = _mm512_or_si512(qb, _mm512_and_si512(_mm512_rorv_epi32(h, _mm512_set1_epi32(2 * p + 29)), b4));
                }
                __m512i lo, hi;
                split_product<5>(qa, ea, oa, zero, &lo, &hi);
                _mm512_storeu_si512(lo_p + k * 64, lo);
                _mm512_storeu_si512(hi_p + k * 64, hi);
                split_product<5>(qb, eb, ob, zero, &lo, &hi);
                _mm512_storeu_si512(lo_p + (8 + k) * 64, lo);
                _mm512_storeu_si512(hi_p + (8 + k) * 64, hi);
                _mm512_storeu_si512(mn_p + k * 64, ma);
                _mm512_storeu_si512(mn_p + (8 + k) * 64, mb);
            }
        }
    }
}

// One 256-element block of 16 columns x 16 rows into tiles T0..T2 (A in tile 3, B in tile 7), stored.
// (The tile intrinsics take literal register numbers, hence the macros.)
#define YITI_AMX_BLOCK3(NAME, T0, T1, T2)                                                          \
    inline void NAME(const uint8_t* xa, size_t ld_x, const uint8_t* pl, int32_t(*C)[16][16]) {   \
        _tile_zero(T0);                                                                          \
        _tile_zero(T1);                                                                          \
        _tile_zero(T2);                                                                          \
        for (int st = 0; st < 4; ++st) {                                                         \
            _tile_loadd(3, xa + 64 * st, ld_x);                                                  \
            _tile_loadd(7, pl + (size_t)st * kPlaneStep, 64);                                    \
            _tile_dpbsud(T0, 3, 7);                                                              \
            _tile_loadd(7, pl + (size_t)(4 + st) * kPlaneStep, 64);                              \
            _tile_dpbsud(T1, 3, 7);                                                              \
            _tile_loadd(7, pl + (size_t)(8 + st) * kPlaneStep, 64);                              \
            _tile_dpbsud(T2, 3, 7);                                                              \
        }                                                                                        \
        _tile_stored(T0, C[0], 64);                                                              \
        _tile_stored(T1, C[1], 64);                                                              \
        _tile_stored(T2, C[2], 64);                                                              \
    }
YITI_AMX_BLOCK3(amx_block3_a, 0, 1, 2)
YITI_AMX_BLOCK3(amx_block3_b, 4, 5, 6)

#define YITI_AMX_BLOCK2S(NAME, T0, T1)                                                           \
    inline void NAME(const uint8_t* xa, size_t ld_x, const uint8_t* pl, int32_t(*C)[16][16]) {   \
        _tile_zero(T0);                                                                          \
        _tile_zero(T1);                                                                          \
        for (int st = 0; st < 4; ++st) {                                                         \
            _tile_loadd(3, xa + 64 * st, ld_x);                                                  \
            _tile_loadd(7, pl + (size_t)st * kPlaneStep, 64);                                    \
            _tile_dpbssd(T0, 3, 7);                                                              \
            _tile_loadd(7, pl + (size_t)(4 + st) * kPlaneStep, 64);                              \
            _tile_dpbssd(T1, 3, 7);                                                              \
        }                                                                                        \
        _tile_stored(T0, C[0], 64);                                                              \
        _tile_stored(T1, C[1], 64);                                                              \
    }
YITI_AMX_BLOCK2S(amx_block2s_a, 0, 1)
YITI_AMX_BLOCK2S(amx_block2s_b, 4, 5)

using AmxBlockFn = void (*)(const uint8_t* xa, size_t ld_x, const uint8_t* pl, int32_t (*C)[16][16]);

// The k-quant AMX products: for each tile of 16 columns, block i's tile products (BlockA / BlockB
// on tile set i % 2, over its planes_per_block bytes of planes) are issued and stored; the float
// epilogue of block i - 1 (epilogue(j, its int32 tiles, x tile, acc)) runs after block i's products
// are issued, so it never waits for a tile store that just happened. NT: int32 tiles per block.
template <int NT, AmxBlockFn BlockA, AmxBlockFn BlockB, class Epilogue>
inline void amx_k_columns(int64_t nb, const uint8_t* planes, size_t planes_per_block, float* s, size_t ld_s, int nr,
                          const void* x, size_t ld_x, int nc, Epilogue epilogue) {
    const __mmask16 rm = row_mask(nr);
    alignas(64) int32_t C[2][NT][16][16];
    for (int c0 = 0; c0 < nc; c0 += 16) {
        const uint8_t* xt = column_tile(x, ld_x, c0, nc);
        __m512 acc[16];
#pragma GCC unroll 16
        for (int c = 0; c < 16; ++c) acc[c] = _mm512_setzero_ps();
        for (int64_t i = 0; i <= nb; ++i) {
            if (i < nb) {
                const uint8_t* xa = xt + (size_t)i * sizeof(ActQ8K);
                const uint8_t* pl = planes + (size_t)i * planes_per_block;
                if (i & 1) BlockB(xa, ld_x, pl, C[1]);
                else BlockA(xa, ld_x, pl, C[0]);
            }
            if (i > 0) epilogue(i - 1, (const int32_t(*)[16][16])C[(i - 1) & 1], xt, acc);
        }
        const int cn = nc - c0 < 16 ? nc - c0 : 16;
#pragma GCC unroll 16
        for (int c = 0; c < 16; ++c)  // constant indices keep acc in registers
            if (c < cn) _mm512_mask_storeu_ps(s + (size_t)(c0 + c) * ld_s, rm, acc[c]);
    }
}

template <bool Q5>
void gemm_amx_q45(int64_t n, float* s, size_t ld_s, const void* group, int nr, const void* x, size_t ld_x, int nc) {
    using P = std::conditional_t<Q5, PQ5K, PQ4K>;
    const int64_t nb = n / QK_K;
    uint8_t* planes = t_scratch.get_planes((size_t)nb * kKBlockPlanes3);
    convert_q45<Q5>((const uint8_t*)group, nb, planes);
    set_config(kCfgK);
    const P* B = (const P*)group;
    amx_k_columns<3, amx_block3_a, amx_block3_b>(
        nb, planes, kKBlockPlanes3, s, ld_s, nr, x, ld_x, nc,
        [&](int64_t j, const int32_t(*Ci)[16][16], const uint8_t* xt, __m512* acc) {
            const __m512 d = load_f16x16(B[j].d), dm = load_f16x16(B[j].dmin);
            const ActQ8K* y = (const ActQ8K*)xt + j;
#pragma GCC unroll 16
            for (int c = 0; c < 16; ++c) {
                const __m512 yd = _mm512_set1_ps(((const ActQ8K*)((const uint8_t*)y + (size_t)c * ld_x))->d);
                const __m512i isum = _mm512_add_epi32(_mm512_load_si512(Ci[0][c]), _mm512_slli_epi32(_mm512_load_si512(Ci[1][c]), 5));
                acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(d, yd), _mm512_cvtepi32_ps(isum), acc[c]);
                acc[c] = _mm512_fnmadd_ps(_mm512_mul_ps(dm, yd), _mm512_cvtepi32_ps(_mm512_load_si512(Ci[2][c])), acc[c]);
            }
        });
}

// ------------------------------------------------------------------------------------------------
// Q6_K: w' = sc * (u - 32) = lo + 64 hi with lo in [0, 63], hi in [-64, 63]; planes [2][4][16][64].

void convert_q6(const uint8_t* group, int64_t nb, uint8_t* planes) {
    const PQ6K* B = (const PQ6K*)group;
    const __m512i m03 = _mm512_set1_epi8(0x03), m0c = _mm512_set1_epi8(0x0C), m30 = _mm512_set1_epi8(0x30);
    const __m512i m3f = _mm512_set1_epi8(0x3F);
    for (int64_t i = 0; i < nb; ++i) {
        const PQ6K& b = B[i];
        uint8_t* pl = planes + (size_t)i * kKBlockPlanes2;
        for (int j = 0; j < 8; ++j) {
            const int g = j / 4, role = j % 4;  // role 2: the sub-block spread over bits 6..7 of the lines
            __m512i e0, o0, e1, o1;
            row_multipliers(b.sc[2 * j], &e0, &o0, true);
            row_multipliers(b.sc[2 * j + 1], &e1, &o1, true);
            // 32 * sc as int16 pairs (even, odd) for the stored offset.
            const __m512i s0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)b.sc[2 * j]));
            const __m512i s1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)b.sc[2 * j + 1]));
            const __m512i f0 = _mm512_slli_epi32(s0, 5), f1 = _mm512_slli_epi32(s1, 5);
            const __m512i off0 = _mm512_or_si512(_mm512_and_si512(f0, _mm512_set1_epi32(0xFFFF)), _mm512_slli_epi32(f0, 16));
            const __m512i off1 = _mm512_or_si512(_mm512_and_si512(f1, _mm512_set1_epi32(0xFFFF)), _mm512_slli_epi32(f1, 16));
            uint8_t* lo_p = pl + (size_t)(j / 2) * kPlaneStep + (size_t)(j % 2) * 8 * 64;
            uint8_t* hi_p = lo_p + 4 * kPlaneStep;
            for (int k = 0; k < 8; ++k) {
                __m512i u;
                if (role == 2) {  // bits 6..7 of the three lines: u's bits 0..1, 2..3, 4..5
                    const __m512i l0 = _mm512_loadu_si512(b.q[g][k][0]), l1 = _mm512_loadu_si512(b.q[g][k][1]);
                    const __m512i l2 = _mm512_loadu_si512(b.q[g][k][2]);
                    u = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l0, 6), m03),
                                        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l1, 4), m0c),
                                                        _mm512_and_si512(_mm512_srli_epi16(l2, 2), m30)));
                } else {
                    u = _mm512_and_si512(_mm512_loadu_si512(b.q[g][k][role == 3 ? 2 : role]), m3f);
                }
                __m512i lo, hi;
                if (k < 4) split_product<6>(u, e0, o0, off0, &lo, &hi);
                else split_product<6>(u, e1, o1, off1, &lo, &hi);
                _mm512_storeu_si512(lo_p + k * 64, lo);
                _mm512_storeu_si512(hi_p + k * 64, hi);
            }
        }
    }
}

void gemm_amx_q6(int64_t n, float* s, size_t ld_s, const void* group, int nr, const void* x, size_t ld_x, int nc) {
    const int64_t nb = n / QK_K;
    uint8_t* planes = t_scratch.get_planes((size_t)nb * kKBlockPlanes2);
    convert_q6((const uint8_t*)group, nb, planes);
    set_config(kCfgK);
    const PQ6K* B = (const PQ6K*)group;
    amx_k_columns<2, amx_block2s_a, amx_block2s_b>(
        nb, planes, kKBlockPlanes2, s, ld_s, nr, x, ld_x, nc,
        [&](int64_t j, const int32_t(*Ci)[16][16], const uint8_t* xt, __m512* acc) {
            const __m512 d = load_f16x16(B[j].d);
#pragma GCC unroll 16
            for (int c = 0; c < 16; ++c) {
                const ActQ8K* y = (const ActQ8K*)(xt + (size_t)c * ld_x) + j;
                const __m512i tot = _mm512_add_epi32(_mm512_load_si512(Ci[0][c]), _mm512_slli_epi32(_mm512_load_si512(Ci[1][c]), 6));
                acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(y->d)), _mm512_cvtepi32_ps(tot), acc[c]);
            }
        });
}

// ------------------------------------------------------------------------------------------------
// Q8_0: B tiles 8 quads x 16 rows x 4 bytes of signed w (the group's w + 128 with the top bit
// flipped, once per call), A tiles 16 columns x 32 bytes; TDPBSSD gives each 32-element block's exact
// sum w . x, which the VNNI kernel gets as dot(w + 128, x) - 128 * sum(x).
// Every block needs its own tile store and float epilogue (16 x load, cvt, mul, fma): tile
// instructions and 512-bit vector ops do not overlap on this core, so the loop keeps both minimal.

void gemm_amx_q80(int64_t n, float* s, size_t ld_s, const void* group, int nr, const void* x, size_t ld_x, int nc) {
    const int64_t nb = n / QK8_0, np = (nb + 1) / 2;
    const PQ80x2* B = (const PQ80x2*)group;
    // Signed weights (q + 128) ^ 0x80 = q, [pair][h][8 quads][16 rows][4]: TDPBSSD then gives the
    // exact block sum w . x directly (no 128 * sum(x) to subtract).
    uint8_t* wq = t_scratch.get_planes((size_t)np * 1024);
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int64_t p = 0; p < np; ++p)
#pragma GCC unroll 16
        for (int k = 0; k < 16; ++k)
            _mm512_store_si512(wq + (size_t)p * 1024 + k * 64, _mm512_xor_si512(_mm512_load_si512(&B[p].qs[0][0][0][0] + k * 64), flip));
    set_config(kCfgQ80);
    const __mmask16 rm = row_mask(nr);
    alignas(64) int32_t C[2][16][16];
    // Consecutive calls (the groups of a task, all against the same columns) walk the column tiles
    // in alternating directions: a call then starts on the columns the previous one read last, which
    // are still in L2.
    static thread_local bool t_backward = false;
    t_backward = !t_backward;
    const int ntile = (nc + 15) / 16;
    auto tile_col = [&](int t) { return 16 * (t_backward ? ntile - 1 - t : t); };
    // One pipeline over all (column tile, block) steps g: step g's tile product is issued before
    // step g - 1's tile store (the tile unit overlaps the two), then step g - 2's epilogue.
    const uint8_t* xts[4];  // the A rows of tile t (kept until its epilogue is done: 2 steps behind)
    xts[0] = column_tile(x, ld_x, tile_col(0), nc);
    int ta = 0, te = 0;      // column tiles of the product and of the epilogue stage
    int64_t ia = 0, ie = 0;  // their blocks
    __m512 acc[16];
#pragma GCC unroll 16
    for (int c = 0; c < 16; ++c) acc[c] = _mm512_setzero_ps();
    const int64_t steps = (int64_t)ntile * nb;
    for (int64_t g = 0; g < steps + 2; ++g) {
        if (g < steps) {
            const uint8_t* xa = xts[ta & 3] + (size_t)ia * sizeof(ActQ80);
            const uint8_t* wa = wq + (size_t)ia * 512;
            if (g & 1) {
                _tile_loadd(7, xa, ld_x);
                _tile_loadd(5, wa, 64);
                _tile_zero(1);
                _tile_dpbssd(1, 7, 5);
            } else {
                _tile_loadd(3, xa, ld_x);
                _tile_loadd(4, wa, 64);
                _tile_zero(0);
                _tile_dpbssd(0, 3, 4);
            }
            if (++ia == nb && ++ta < ntile) {
                ia = 0;
                xts[ta & 3] = column_tile(x, ld_x, tile_col(ta), nc);
            }
        }
        if (g >= 1 && g <= steps) {
            if (g & 1) _tile_stored(0, C[0], 64);
            else _tile_stored(1, C[1], 64);
        }
        if (g < 2) continue;
        const uint8_t* xt = xts[te & 3];
        const __m512 d = load_f16x16(B[ie / 2].d[ie & 1]);
        const int32_t(*Ci)[16] = C[g & 1];
#pragma GCC unroll 16
        for (int c = 0; c < 16; ++c) {
            const ActQ80* y = (const ActQ80*)(xt + (size_t)c * ld_x) + ie;
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(y->d)), _mm512_cvtepi32_ps(_mm512_load_si512(Ci[c])), acc[c]);
        }
        if (++ie == nb) {
            const int c0 = tile_col(te), cn = nc - c0 < 16 ? nc - c0 : 16;
#pragma GCC unroll 16
            for (int c = 0; c < 16; ++c) {  // constant indices keep acc in registers
                if (c < cn) _mm512_mask_storeu_ps(s + (size_t)(c0 + c) * ld_s, rm, acc[c]);
                acc[c] = _mm512_setzero_ps();
            }
            ie = 0;
            ++te;
        }
    }
}

}  // namespace

bool amx_available() {
    static const bool ok = [] {
        if (const char* e = getenv("YITI_NO_AMX"); e && *e && strcmp(e, "0") != 0) return false;
        return cpuid_amx() && request_amx();
    }();
    return ok;
}

void gemm_amx_q4_K(int64_t n, float* s, size_t ld_s, const void* g, int nr, const void* x, size_t ld_x, int nc) {
    gemm_amx_q45<false>(n, s, ld_s, g, nr, x, ld_x, nc);
}
void gemm_amx_q5_K(int64_t n, float* s, size_t ld_s, const void* g, int nr, const void* x, size_t ld_x, int nc) {
    gemm_amx_q45<true>(n, s, ld_s, g, nr, x, ld_x, nc);
}
void gemm_amx_q6_K(int64_t n, float* s, size_t ld_s, const void* g, int nr, const void* x, size_t ld_x, int nc) {
    gemm_amx_q6(n, s, ld_s, g, nr, x, ld_x, nc);
}
void gemm_amx_q8_0(int64_t n, float* s, size_t ld_s, const void* g, int nr, const void* x, size_t ld_x, int nc) {
    gemm_amx_q80(n, s, ld_s, g, nr, x, ld_x, nc);
}

}  // namespace yiti::cpu
