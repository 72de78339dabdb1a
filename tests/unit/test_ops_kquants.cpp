// Op tests for the k-quant family (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS with Q8_K activations):
//   KQuantSpec    the reference against ggml's definitions (hand-built blocks, ggml-shaped dequant loops)
//   KQuantRef     the reference against itself (dot vs float dot, quantize round trip, Q8_K rules)
//   KQuantKernels every fast CPU kernel level against the reference
//   KQuantBench   (disabled) rough single-thread speed
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "cpu/kernels.h"
#include "quant/blocks.h"
#include "quant/quant.h"

using namespace yiti;
using yiti::cpu::Isa;

namespace {

const DType kWeightTypes[] = {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_XS};
const int64_t kSizes[] = {256, 4096, 4352};
const int kTileSizes[] = {1, 3, 4, 5, 8, 17};

// ------------------------------------------------------------------------------------------------
// Deterministic random numbers (splitmix64; Box-Muller for normals).

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed) {}
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return (double)(next() >> 11) * 0x1p-53; }  // [0, 1)
    float normal() {
        const double u1 = uniform() + 0x1p-60, u2 = uniform();
        return (float)(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
};

size_t block_bytes(DType t) { return dtype_info(t).type_size; }

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x) {
    std::vector<uint8_t> q(row_size(t, (int64_t)x.size()));
    quant::quantize_row_ref(t, x.data(), q.data(), (int64_t)x.size());
    return q;
}

std::vector<float> dequantize(DType t, const uint8_t* q, int64_t n) {
    std::vector<float> y(n);
    quant::dequantize_row_ref(t, q, y.data(), n);
    return y;
}

// Random float data: normal with a per-row scale, some outliers, and (for longer rows) a zero block,
// a constant positive block and a constant negative block.
std::vector<float> random_row(Rng& rng, int64_t n, int kind) {
    std::vector<float> x(n);
    const float sigma = std::pow(10.0f, (float)(rng.uniform() * 4.0 - 3.0));  // 1e-3 .. 10
    for (auto& v : x) v = sigma * rng.normal();
    if (kind % 3 == 1)
        for (int k = 0; k < 8; ++k) x[rng.next() % n] *= 12.0f;  // outliers
    if (kind % 3 == 2)
        for (auto& v : x) v = v + 0.5f * sigma;  // off-centre distribution
    if (n >= 4 * QK_K && kind == 0) {
        for (int e = 0; e < QK_K; ++e) x[e] = 0.0f;
        for (int e = 0; e < QK_K; ++e) x[QK_K + e] = 0.75f * sigma;
        for (int e = 0; e < QK_K; ++e) x[2 * QK_K + e] = -1.25f * sigma;
    }
    return x;
}

// Offsets (bytes) of the fp16 super-block scales of each format.
std::vector<size_t> fp16_fields(DType t) {
    switch (t) {
        case DType::Q2_K: return {offsetof(block_q2_K, d), offsetof(block_q2_K, dmin)};
        case DType::Q3_K: return {offsetof(block_q3_K, d)};
        case DType::Q4_K: return {offsetof(block_q4_K, d), offsetof(block_q4_K, dmin)};
        case DType::Q5_K: return {offsetof(block_q5_K, d), offsetof(block_q5_K, dmin)};
        case DType::Q6_K: return {offsetof(block_q6_K, d)};
        case DType::IQ4_XS: return {offsetof(block_iq4_xs, d)};
        default: return {};
    }
}

bool is_affine(DType t) { return t == DType::Q2_K || t == DType::Q4_K || t == DType::Q5_K; }

// Random block bytes (every bit pattern of quants and packed scales) with sane fp16 scales.
std::vector<uint8_t> random_blocks(Rng& rng, DType t, int64_t n) {
    std::vector<uint8_t> q(row_size(t, n));
    for (auto& b : q) b = (uint8_t)rng.next();
    const size_t bs = block_bytes(t);
    for (size_t off = 0; off < q.size(); off += bs) {
        for (size_t f : fp16_fields(t)) {
            const float v = (float)((rng.uniform() * 2.0 - 1.0) * 0.02);
            const uint16_t h = fp32_to_fp16(v);
            memcpy(&q[off + f], &h, 2);
        }
    }
    return q;
}

// For affine formats: per element the magnitude of the "- dmin * m" term (dequantize the row with all
// quant bits zeroed). Zero for the others.
std::vector<float> min_offsets(DType t, const uint8_t* q, int64_t n) {
    std::vector<float> off(n, 0.0f);
    if (!is_affine(t)) return off;
    std::vector<uint8_t> z(q, q + row_size(t, n));
    const size_t bs = block_bytes(t);
    for (size_t b = 0; b < z.size(); b += bs) {
        uint8_t* p = &z[b];
        if (t == DType::Q2_K) memset(((block_q2_K*)p)->qs, 0, QK_K / 4);
        if (t == DType::Q4_K) memset(((block_q4_K*)p)->qs, 0, QK_K / 2);
        if (t == DType::Q5_K) {
            memset(((block_q5_K*)p)->qs, 0, QK_K / 2);
            memset(((block_q5_K*)p)->qh, 0, QK_K / 8);
        }
    }
    off = dequantize(t, z.data(), n);
    for (auto& v : off) v = std::fabs(v);
    return off;
}

// Bound on |a - b| for two float evaluations of one k-quant dot product over nb blocks:
//   |a - b| <= (kDotRoundingsPerBlock * nb + kDotRoundingsFixed) * 2^-24 * M,
//   M = sum_e |x_e| * (|w_e| + |off_e|),
// the total magnitude of every term that gets added (off_e is the "dmin * m" term of Q2_K/Q4_K/Q5_K,
// which is subtracted separately and can cancel the scale term; 0 for the other formats).
// Why: every evaluation compared here computes the same exact integer sums per block (the plain float
// dot instead uses exact-in-double products of float-rounded dequantized values), so they differ only
// in float rounding -- per block the scale products, int->float conversions and the fma/add into an
// accumulator (at most ~4 roundings per block on each side), plus a fixed number for the final
// horizontal sum and the rounding of dequantized values; each rounding is at most 2^-24 of a partial
// sum bounded by M. A stress run of 20000 random rows per type saw at most 2.6 * 2^-24 * M.
constexpr double kDotRoundingsPerBlock = 4.0;
constexpr double kDotRoundingsFixed = 16.0;
double dot_tolerance(int64_t nb, double M) {
    return (kDotRoundingsPerBlock * (double)nb + kDotRoundingsFixed) * 0x1p-24 * M + 1e-30;
}

double dot_magnitude(const std::vector<float>& w, const std::vector<float>& off, const std::vector<float>& x) {
    double m = 0;
    for (size_t e = 0; e < w.size(); ++e) m += std::fabs((double)x[e]) * (std::fabs((double)w[e]) + off[e]);
    return m;
}

std::vector<Isa> isa_levels() {
    std::vector<Isa> v;
    for (int i = 0; i <= (int)cpu::cpu_best_isa(); ++i) v.push_back((Isa)i);
    return v;
}

std::string label(DType t, int64_t n, Isa isa) {
    return std::string(dtype_name(t)) + " n=" + std::to_string(n) + " isa=" + cpu::isa_name(isa);
}

// ------------------------------------------------------------------------------------------------
// ggml's dequantization loops, restated in ggml's own loop structure (independent of the reference's
// per-element formulation in ref_kquants.cpp) to check the reference against ggml's definition.

void ggml_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}

void ggml_shaped_dequant(DType t, const uint8_t* src, float* y, int64_t n) {
    const size_t bs = block_bytes(t);
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const uint8_t* blk = src + i * bs;
        switch (t) {
            case DType::Q2_K: {
                const auto& x = *(const block_q2_K*)blk;
                const float d = fp16_to_fp32(x.d), mn = fp16_to_fp32(x.dmin);
                const uint8_t* q = x.qs;
                int is = 0;
                for (int nn = 0; nn < QK_K; nn += 128) {
                    int shift = 0;
                    for (int j = 0; j < 4; ++j) {
                        uint8_t sc = x.scales[is++];
                        float dl = d * (sc & 0xF), ml = mn * (sc >> 4);
                        for (int l = 0; l < 16; ++l) *y++ = dl * ((int8_t)((q[l] >> shift) & 3)) - ml;
                        sc = x.scales[is++];
                        dl = d * (sc & 0xF);
                        ml = mn * (sc >> 4);
                        for (int l = 0; l < 16; ++l) *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3)) - ml;
                        shift += 2;
                    }
                    q += 32;
                }
                break;
            }
            case DType::Q3_K: {
                const auto& x = *(const block_q3_K*)blk;
                const float d_all = fp16_to_fp32(x.d);
                int8_t scales[16];
                for (int j = 0; j < 16; ++j) {
                    const int lo = j < 8 ? (x.scales[j] & 0xF) : (x.scales[j - 8] >> 4);
                    const int hi = (x.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
                    scales[j] = (int8_t)(lo | (hi << 4));
                }
                const uint8_t* q = x.qs;
                const uint8_t* hm = x.hmask;
                uint8_t m = 1;
                int is = 0;
                for (int nn = 0; nn < QK_K; nn += 128) {
                    int shift = 0;
                    for (int j = 0; j < 4; ++j) {
                        float dl = d_all * (scales[is++] - 32);
                        for (int l = 0; l < 16; ++l)
                            *y++ = dl * ((int8_t)((q[l + 0] >> shift) & 3) - ((hm[l + 0] & m) ? 0 : 4));
                        dl = d_all * (scales[is++] - 32);
                        for (int l = 0; l < 16; ++l)
                            *y++ = dl * ((int8_t)((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
                        shift += 2;
                        m <<= 1;
                    }
                    q += 32;
                }
                break;
            }
            case DType::Q4_K: {
                const auto& x = *(const block_q4_K*)blk;
                const float d = fp16_to_fp32(x.d), mn = fp16_to_fp32(x.dmin);
                const uint8_t* q = x.qs;
                int is = 0;
                uint8_t sc, m;
                for (int j = 0; j < QK_K; j += 64) {
                    ggml_scale_min_k4(is + 0, x.scales, &sc, &m);
                    const float d1 = d * sc, m1 = mn * m;
                    ggml_scale_min_k4(is + 1, x.scales, &sc, &m);
                    const float d2 = d * sc, m2 = mn * m;
                    for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
                    for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
                    q += 32;
                    is += 2;
                }
                break;
            }
            case DType::Q5_K: {
                const auto& x = *(const block_q5_K*)blk;
                const float d = fp16_to_fp32(x.d), mn = fp16_to_fp32(x.dmin);
                const uint8_t* ql = x.qs;
                const uint8_t* qh = x.qh;
                int is = 0;
                uint8_t sc, m, u1 = 1, u2 = 2;
                for (int j = 0; j < QK_K; j += 64) {
                    ggml_scale_min_k4(is + 0, x.scales, &sc, &m);
                    const float d1 = d * sc, m1 = mn * m;
                    ggml_scale_min_k4(is + 1, x.scales, &sc, &m);
                    const float d2 = d * sc, m2 = mn * m;
                    for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
                    for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
                    ql += 32;
                    is += 2;
                    u1 <<= 2;
                    u2 <<= 2;
                }
                break;
            }
            case DType::Q6_K: {
                const auto& x = *(const block_q6_K*)blk;
                const float d = fp16_to_fp32(x.d);
                const uint8_t* ql = x.ql;
                const uint8_t* qh = x.qh;
                const int8_t* sc = x.scales;
                for (int nn = 0; nn < QK_K; nn += 128) {
                    for (int l = 0; l < 32; ++l) {
                        const int is = l / 16;
                        const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                        const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                        const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                        const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                        y[l + 0] = d * sc[is + 0] * q1;
                        y[l + 32] = d * sc[is + 2] * q2;
                        y[l + 64] = d * sc[is + 4] * q3;
                        y[l + 96] = d * sc[is + 6] * q4;
                    }
                    y += 128;
                    ql += 64;
                    qh += 32;
                    sc += 8;
                }
                break;
            }
            case DType::IQ4_XS: {
                const auto& x = *(const block_iq4_xs*)blk;
                const float d = fp16_to_fp32(x.d);
                const uint8_t* qs = x.qs;
                for (int ib = 0; ib < QK_K / 32; ++ib) {
                    const int ls = ((x.scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((x.scales_h >> 2 * ib) & 3) << 4);
                    const float dl = d * (ls - 32);
                    for (int j = 0; j < 16; ++j) {
                        y[j + 0] = dl * kvalues_iq4nl[qs[j] & 0xf];
                        y[j + 16] = dl * kvalues_iq4nl[qs[j] >> 4];
                    }
                    y += 32;
                    qs += 16;
                }
                break;
            }
            default: FAIL() << "not a k-quant weight type";
        }
    }
}

void expect_same_floats(const float* a, const float* b, int64_t n, const std::string& what) {
    int64_t bad = 0;
    for (int64_t e = 0; e < n; ++e) {
        if (fp32_to_bits(a[e]) != fp32_to_bits(b[e])) {
            if (++bad <= 5) ADD_FAILURE() << what << ": element " << e << ": " << a[e] << " != " << b[e];
        }
    }
    EXPECT_EQ(bad, 0) << what;
}

}  // namespace

// ================================================================================================
// KQuantSpec: the reference against ggml's definitions.

TEST(KQuantSpec, Traits) {
    for (DType t : kWeightTypes) {
        const quant::RefTraits* r = quant::ref_traits(t);
        ASSERT_NE(r, nullptr) << dtype_name(t);
        EXPECT_EQ(r->vec_dot_type, DType::Q8_K);
        EXPECT_NE(r->to_float, nullptr);
        EXPECT_NE(r->from_float, nullptr);
        EXPECT_NE(r->vec_dot, nullptr);
        EXPECT_EQ(dtype_info(t).block_size, QK_K);
    }
    const quant::RefTraits* q8 = quant::ref_traits(DType::Q8_K);
    ASSERT_NE(q8, nullptr);
    EXPECT_NE(q8->from_float, nullptr);
    EXPECT_NE(q8->to_float, nullptr);
}

// Random block bytes (all bit patterns) dequantized by the reference == ggml's loops, bit for bit.
TEST(KQuantSpec, MatchesGgmlDequantLoops) {
    Rng rng(101);
    for (DType t : kWeightTypes) {
        const int64_t n = 64 * QK_K;
        const auto q = random_blocks(rng, t, n);
        const auto ref = dequantize(t, q.data(), n);
        std::vector<float> want(n);
        ggml_shaped_dequant(t, q.data(), want.data(), n);
        expect_same_floats(ref.data(), want.data(), n, dtype_name(t));
    }
}

// A Q4_K block with chosen d, dmin, 6-bit scales/mins (packed by hand) and nibbles.
TEST(KQuantSpec, HandBuiltQ4K) {
    block_q4_K b{};
    b.d = fp32_to_fp16(0.5f);
    b.dmin = fp32_to_fp16(0.25f);
    const int sc[8] = {1, 2, 3, 63, 17, 40, 33, 5};  // 6-bit scales
    const int mn[8] = {0, 9, 62, 4, 48, 1, 31, 63};  // 6-bit mins
    // bytes 0..3: sc[j] | (high 2 bits of sc[j+4]) << 6;  bytes 4..7: mn[j] | (high 2 of mn[j+4]) << 6
    // bytes 8..11: low nibble of sc[j+4] | low nibble of mn[j+4] << 4
    const uint8_t packed[12] = {
        (uint8_t)(1 | (1 << 6)),  (uint8_t)(2 | (2 << 6)),  (uint8_t)(3 | (2 << 6)),  (uint8_t)(63 | (0 << 6)),
        (uint8_t)(0 | (3 << 6)),  (uint8_t)(9 | (0 << 6)),  (uint8_t)(62 | (1 << 6)), (uint8_t)(4 | (3 << 6)),
        (uint8_t)(1 | (0 << 4)),  (uint8_t)(8 | (1 << 4)),  (uint8_t)(1 | (15 << 4)), (uint8_t)(5 | (15 << 4)),
    };
    memcpy(b.scales, packed, 12);
    // qs[32p + l]: low nibble = element 64p + l, high nibble = element 64p + 32 + l
    for (int p = 0; p < 4; ++p)
        for (int l = 0; l < 32; ++l) b.qs[32 * p + l] = (uint8_t)((l % 16) | ((15 - (l + p) % 16) << 4));
    float y[QK_K];
    quant::dequantize_row_ref(DType::Q4_K, &b, y, QK_K);
    for (int e = 0; e < QK_K; ++e) {
        const int p = e / 64, l = e % 32, sub = e / 32;
        const int q = (e % 64) < 32 ? l % 16 : 15 - (l + p) % 16;
        EXPECT_EQ(y[e], 0.5f * sc[sub] * q - 0.25f * mn[sub]) << "element " << e;
    }
    // A few literal values: element 0 = 0.5*1*0 - 0; element 63 (sub-block 1, high nibble of qs[31]
    // = 15 - 31%16 = 0) = -0.25*9; element 255 (sub-block 7, q = 15 - (31+3)%16 = 13) = 0.5*5*13 - 0.25*63.
    EXPECT_EQ(y[0], 0.0f);
    EXPECT_EQ(y[63], -2.25f);
    EXPECT_EQ(y[255], 32.5f - 15.75f);
}

// A Q6_K block: literal bytes with hand-computed values.
TEST(KQuantSpec, HandBuiltQ6K) {
    block_q6_K b{};
    memset(b.ql, 0x21, sizeof(b.ql));  // low nibble 1, high nibble 2
    memset(b.qh, 0xE4, sizeof(b.qh));  // 2-bit fields, low to high: 0, 1, 2, 3
    for (int k = 0; k < 16; ++k) b.scales[k] = (int8_t)(k - 8);
    b.d = fp32_to_fp16(0.25f);
    float y[QK_K];
    quant::dequantize_row_ref(DType::Q6_K, &b, y, QK_K);
    // Within each 128-element half, 32-element group j: j=0: ql low (1) | qh bits 0-1 (0) << 4 = 1;
    // j=1: 1 | 1<<4 = 17; j=2: ql high (2) | 2<<4 = 34; j=3: 2 | 3<<4 = 50; value = d*sc*(q - 32).
    const int qv[4] = {1 - 32, 17 - 32, 34 - 32, 50 - 32};
    for (int e = 0; e < QK_K; ++e) {
        const int j = (e % 128) / 32;
        EXPECT_EQ(y[e], 0.25f * (float)(e / 16 - 8) * (float)qv[j]) << "element " << e;
    }
    EXPECT_EQ(y[0], 0.25f * -8 * -31);    // 62
    EXPECT_EQ(y[40], 0.25f * -6 * -15);   // 22.5
    EXPECT_EQ(y[200], 0.25f * 4 * 2);     // 2
    EXPECT_EQ(y[255], 0.25f * 7 * 18);    // 31.5
}

// An IQ4_XS block: hand-packed 6-bit scales and nibbles into kvalues_iq4nl.
TEST(KQuantSpec, HandBuiltIQ4XS) {
    block_iq4_xs b{};
    b.d = fp32_to_fp16(0.125f);
    const int ls[8] = {0, 63, 32, 33, 17, 48, 31, 1};  // stored (biased) scales; value ls - 32
    for (int ib = 0; ib < 8; ++ib) {
        b.scales_l[ib / 2] |= (uint8_t)((ls[ib] & 0xF) << (4 * (ib % 2)));
        b.scales_h |= (uint16_t)((ls[ib] >> 4) << (2 * ib));
    }
    EXPECT_EQ(b.scales_l[0], 0xF0);
    EXPECT_EQ(b.scales_h, 0x0 | (3 << 2) | (2 << 4) | (2 << 6) | (1 << 8) | (3 << 10) | (1 << 12) | (0 << 14));
    for (int ib = 0; ib < 8; ++ib)
        for (int j = 0; j < 16; ++j) b.qs[16 * ib + j] = (uint8_t)((j) | ((15 - j) << 4));
    float y[QK_K];
    quant::dequantize_row_ref(DType::IQ4_XS, &b, y, QK_K);
    for (int e = 0; e < QK_K; ++e) {
        const int ib = e / 32, l = e % 32;
        const int idx = l < 16 ? l : 15 - (l - 16);
        EXPECT_EQ(y[e], 0.125f * (float)(ls[ib] - 32) * (float)kvalues_iq4nl[idx]) << "element " << e;
    }
    EXPECT_EQ(y[0], 0.125f * -32 * -127);  // 508
    EXPECT_EQ(y[32 + 16], 0.125f * 31 * 113);
    EXPECT_EQ(y[64 + 5], 0.0f);             // scale 32 - 32 = 0
    EXPECT_EQ(y[96 + 8], 0.125f * 1 * 1);  // kvalues[8] = 1
}

// A Q2_K block: scale/min nibbles and 2-bit fields.
TEST(KQuantSpec, HandBuiltQ2K) {
    block_q2_K b{};
    b.d = fp32_to_fp16(2.0f);
    b.dmin = fp32_to_fp16(0.5f);
    for (int k = 0; k < 16; ++k) b.scales[k] = (uint8_t)((k % 16) | ((15 - k) << 4));
    memset(b.qs, 0xE4, sizeof(b.qs));  // fields 0,1,2,3 in bits 0-1, 2-3, 4-5, 6-7
    float y[QK_K];
    quant::dequantize_row_ref(DType::Q2_K, &b, y, QK_K);
    for (int e = 0; e < QK_K; ++e) {
        const int k = e / 16, field = (e % 128) / 32;
        EXPECT_EQ(y[e], 2.0f * k * field - 0.5f * (15 - k)) << "element " << e;
    }
    EXPECT_EQ(y[0], -7.5f);
    EXPECT_EQ(y[255], 2.0f * 15 * 3 - 0.0f);
}

// A Q3_K block: packed 6-bit scales, low 2 bits and the "minus 4 unless the hmask bit is set" rule.
TEST(KQuantSpec, HandBuiltQ3K) {
    block_q3_K b{};
    b.d = fp32_to_fp16(0.5f);
    int sc[16];
    for (int k = 0; k < 16; ++k) sc[k] = (k * 5) % 64;  // stored (biased) scales; value sc - 32
    for (int k = 0; k < 16; ++k) {
        if (k < 8) b.scales[k] |= (uint8_t)(sc[k] & 0xF);
        else b.scales[k - 8] |= (uint8_t)((sc[k] & 0xF) << 4);
        b.scales[8 + k % 4] |= (uint8_t)((sc[k] >> 4) << (2 * (k / 4)));
    }
    memset(b.qs, 0x1B, sizeof(b.qs));     // fields 3, 2, 1, 0
    memset(b.hmask, 0x55, sizeof(b.hmask));  // high bit set for even 32-element groups
    float y[QK_K];
    quant::dequantize_row_ref(DType::Q3_K, &b, y, QK_K);
    for (int e = 0; e < QK_K; ++e) {
        const int k = e / 16, g = e / 32, field = (e % 128) / 32;
        const int low = 3 - field;
        const int q = low - ((g % 2 == 0) ? 0 : 4);
        EXPECT_EQ(y[e], 0.5f * (float)(sc[k] - 32) * (float)q) << "element " << e;
    }
    EXPECT_EQ(y[0], 0.5f * -32 * 3);       // scale 0 - 32, group 0: field 3, high bit set
    EXPECT_EQ(y[40], 0.5f * (10 - 32) * (2 - 4));
}

// A Q5_K block: the fifth bit from qh.
TEST(KQuantSpec, HandBuiltQ5K) {
    block_q5_K b{};
    b.d = fp32_to_fp16(1.0f);
    b.dmin = fp32_to_fp16(2.0f);
    // scales 1..8 would need high bits for j >= 4 only above 15; use small ones: sc[j] = j + 1,
    // mins m[j] = j (j < 8), packed: bytes 0..3 sc, 4..7 mins, 8..11 low nibbles for j >= 4.
    const uint8_t packed[12] = {1, 2, 3, 4, 0, 1, 2, 3, (uint8_t)(5 | (4 << 4)), (uint8_t)(6 | (5 << 4)),
                                (uint8_t)(7 | (6 << 4)), (uint8_t)(8 | (7 << 4))};
    memcpy(b.scales, packed, 12);
    memset(b.qs, 0x3A, sizeof(b.qs));  // low nibble 10, high nibble 3
    memset(b.qh, 0x96, sizeof(b.qh));  // bits 1, 2, 4, 7 set: groups 1, 2, 4, 7 get +16
    float y[QK_K];
    quant::dequantize_row_ref(DType::Q5_K, &b, y, QK_K);
    for (int e = 0; e < QK_K; ++e) {
        const int g = e / 32;
        const int q = ((g % 2) ? 3 : 10) + ((0x96 >> g) & 1 ? 16 : 0);
        EXPECT_EQ(y[e], 1.0f * (g + 1) * q - 2.0f * g) << "element " << e;
    }
    EXPECT_EQ(y[0], 10.0f);
    EXPECT_EQ(y[32], 2.0f * 19 - 2.0f);
}

// Q8_K: the largest-magnitude element (the first on ties) maps to -127; bsums are sums of 16.
TEST(KQuantSpec, Q8KDefinition) {
    std::vector<float> x(2 * QK_K);
    for (int e = 0; e < QK_K; ++e) x[e] = (float)((e * 37) % 101 - 50) * 0.01f;
    x[5] = -3.0f;
    x[100] = 3.0f;  // ties with x[5]: the first one wins
    for (int e = 0; e < QK_K; ++e) x[QK_K + e] = 0.0f;  // all-zero block
    std::vector<block_q8_K> y(2);
    quant::quantize_row_ref(DType::Q8_K, x.data(), y.data(), 2 * QK_K);
    EXPECT_EQ(y[0].qs[5], -127);  // iscale = -127 / -3 > 0: x[5] -> -127
    EXPECT_EQ(y[0].qs[100], 127);
    EXPECT_EQ(y[0].d, 1.0f / (-127.f / -3.0f));
    for (int e = 0; e < QK_K; ++e) {
        const float iscale = -127.f / -3.0f;
        EXPECT_EQ(y[0].qs[e], (int)std::min(127.0f, std::nearbyint(iscale * x[e]))) << e;
    }
    for (int k = 0; k < 16; ++k) {
        int s = 0;
        for (int l = 0; l < 16; ++l) s += y[0].qs[16 * k + l];
        EXPECT_EQ(y[0].bsums[k], s);
        EXPECT_EQ(y[1].bsums[k], 0);
    }
    EXPECT_EQ(y[1].d, 0.0f);
    for (int e = 0; e < QK_K; ++e) EXPECT_EQ(y[1].qs[e], 0);
    // Positive maximum first: d is negative.
    std::vector<float> x2(QK_K, 0.5f);
    x2[7] = 2.0f;
    x2[9] = -2.0f;
    block_q8_K y2;
    quant::quantize_row_ref(DType::Q8_K, x2.data(), &y2, QK_K);
    EXPECT_EQ(y2.qs[7], -127);
    EXPECT_EQ(y2.qs[9], 127);
    EXPECT_LT(y2.d, 0.0f);
}

// ================================================================================================
// KQuantRef: the reference against itself.

// Reference vec_dot == a plain float dot of the dequantized weights and dequantized activations.
TEST(KQuantRef, VecDotMatchesFloatDot) {
    Rng rng(202);
    for (DType t : kWeightTypes) {
        for (int64_t n : kSizes) {
            for (int row = 0; row < 6; ++row) {
                const auto q = row < 4 ? quantize(t, random_row(rng, n, row)) : random_blocks(rng, t, n);
                const auto xf = random_row(rng, n, row + 1);
                const auto xq = quantize(DType::Q8_K, xf);
                const auto w = dequantize(t, q.data(), n);
                const auto x = dequantize(DType::Q8_K, xq.data(), n);
                const auto off = min_offsets(t, q.data(), n);
                double want = 0;
                for (int64_t e = 0; e < n; ++e) want += (double)w[e] * (double)x[e];
                const float got = quant::ref_traits(t)->vec_dot(n, q.data(), xq.data());
                const double tol = dot_tolerance(n / QK_K, dot_magnitude(w, off, x));
                EXPECT_NEAR(got, want, tol) << dtype_name(t) << " n=" << n << " row=" << row;
            }
        }
    }
}

// dequantize(quantize(x)) is close to x. Bounds on the relative RMS error RMS(x - x') / RMS(x), set
// about 1.2x above what this reference quantizer reaches on these rows. For comparison, on 65536
// normal values this quantizer / ggml's reference quantizer reach: Q2_K 0.274 / 0.297, Q3_K
// 0.153 / 0.151, Q4_K 0.0715 / 0.0714, Q5_K 0.0360 / 0.0362, Q6_K 0.0178 / 0.0178, IQ4_XS
// 0.0769 / 0.0768. Rows with strong outliers (8 values x12 in the row; in a single 256-block that
// is very heavy) get the second, looser bound.
TEST(KQuantRef, RoundTripError) {
    struct Bound {
        DType t;
        double normal, outliers;
    };
    const Bound bounds[] = {{DType::Q2_K, 0.34, 0.38},   {DType::Q3_K, 0.19, 0.28},
                            {DType::Q4_K, 0.092, 0.13},  {DType::Q5_K, 0.047, 0.065},
                            {DType::Q6_K, 0.024, 0.034}, {DType::IQ4_XS, 0.097, 0.15}};
    for (const auto& b : bounds) {
        Rng rng(303);
        for (int64_t n : kSizes) {
            for (int row = 0; row < 4; ++row) {
                const auto x = random_row(rng, n, row);
                const auto y = dequantize(b.t, quantize(b.t, x).data(), n);
                double se = 0, sx = 0, max_err_rel_block = 0;
                for (int64_t i = 0; i < n / QK_K; ++i) {
                    double bse = 0, bmax = 0;
                    for (int e = 0; e < QK_K; ++e) {
                        const double d = (double)x[i * QK_K + e] - y[i * QK_K + e];
                        bse += d * d;
                        sx += (double)x[i * QK_K + e] * x[i * QK_K + e];
                        bmax = std::max(bmax, std::fabs((double)x[i * QK_K + e]));
                    }
                    se += bse;
                    // Every block, whatever its content, has RMS error well below its range.
                    if (bmax > 0) max_err_rel_block = std::max(max_err_rel_block, std::sqrt(bse / QK_K) / bmax);
                }
                const double rel = sx > 0 ? std::sqrt(se / sx) : 0;
                const double bound = row % 3 == 1 ? b.outliers : b.normal;
                EXPECT_LT(rel, bound) << dtype_name(b.t) << " n=" << n << " row=" << row;
                EXPECT_LT(max_err_rel_block, 0.2) << dtype_name(b.t) << " n=" << n << " row=" << row;
                if (n == 4096 && row == 0)
                    printf("  %-7s relative RMS error %.4f (bound %.3f)\n", dtype_name(b.t), rel, bound);
            }
        }
        // Exact zeros stay exact.
        std::vector<float> z(QK_K, 0.0f);
        const auto yz = dequantize(b.t, quantize(b.t, z).data(), QK_K);
        for (float v : yz) EXPECT_EQ(v, 0.0f) << dtype_name(b.t);
    }
}

// Quantizing is deterministic and re-quantizing dequantized data is close to a fixed point.
TEST(KQuantRef, Deterministic) {
    Rng rng(404);
    for (DType t : kWeightTypes) {
        const auto x = random_row(rng, 4096, 1);
        EXPECT_EQ(quantize(t, x), quantize(t, x)) << dtype_name(t);
    }
}

// ================================================================================================
// KQuantKernels: every fast level against the reference.

namespace {

struct Case {
    DType t;
    int64_t n;
    std::vector<std::vector<uint8_t>> w;   // weight rows
    std::vector<std::vector<float>> xf;    // activation rows (float)
    std::vector<std::vector<uint8_t>> xq;  // reference Q8_K of xf
};

Case make_case(DType t, int64_t n, uint64_t seed) {
    Rng rng(seed);
    Case c{t, n, {}, {}, {}};
    for (int r = 0; r < 17; ++r) c.w.push_back(r < 11 ? quantize(t, random_row(rng, n, r)) : random_blocks(rng, t, n));
    for (int k = 0; k < 17; ++k) {
        c.xf.push_back(random_row(rng, n, k + 2));
        c.xq.push_back(quantize(DType::Q8_K, c.xf.back()));
    }
    return c;
}

}  // namespace

TEST(KQuantKernels, Present) {
    for (DType t : kWeightTypes)
        for (Isa isa : isa_levels()) {
            const cpu::CpuKernels* k = cpu::cpu_kernels(t, isa);
            ASSERT_NE(k, nullptr) << label(t, 0, isa);
            EXPECT_EQ(k->vec_dot_type, DType::Q8_K);
            EXPECT_NE(k->from_float, nullptr);
            EXPECT_NE(k->to_float, nullptr);
            EXPECT_NE(k->vec_dot, nullptr);
            EXPECT_NE(k->gemm, nullptr);
        }
    // Types of other families are not ours.
    for (DType t : {DType::Q8_K, DType::Q4_0, DType::F32, DType::IQ2_XS})
        for (Isa isa : isa_levels()) EXPECT_EQ(cpu::cpu_kernels_kquants(t, isa), nullptr) << dtype_name(t);
    printf("  best ISA here: %s\n", cpu::isa_name(cpu::cpu_best_isa()));
}

TEST(KQuantKernels, ToFloatExact) {
    for (DType t : kWeightTypes)
        for (int64_t n : kSizes) {
            const Case c = make_case(t, n, 500 + (uint64_t)n);
            for (Isa isa : isa_levels()) {
                const cpu::CpuKernels* k = cpu::cpu_kernels(t, isa);
                for (size_t r = 0; r < c.w.size(); ++r) {
                    const auto want = dequantize(t, c.w[r].data(), n);
                    std::vector<float> got(n);
                    k->to_float(c.w[r].data(), got.data(), n);
                    expect_same_floats(got.data(), want.data(), n, label(t, n, isa) + " row " + std::to_string(r));
                }
            }
        }
}

// The fast Q8_K quantizer is byte-identical to the reference.
TEST(KQuantKernels, Q8KFromFloatExact) {
    Rng rng(606);
    for (int64_t n : kSizes) {
        for (int r = 0; r < 12; ++r) {
            auto x = random_row(rng, n, r);
            if (r == 3) {  // ties of the largest magnitude, both orders
                x[5] = -100.0f;
                x[77] = 100.0f;
                if (n > QK_K) {
                    x[QK_K + 9] = 100.0f;
                    x[QK_K + 200] = -100.0f;
                }
            }
            if (r == 4)
                for (int e = 0; e < QK_K; ++e) x[e] = 0.0f;
            const auto want = quantize(DType::Q8_K, x);
            for (DType t : kWeightTypes)
                for (Isa isa : isa_levels()) {
                    std::vector<uint8_t> got(want.size(), 0xCD);
                    cpu::cpu_kernels(t, isa)->from_float(x.data(), got.data(), n);
                    ASSERT_EQ(got, want) << label(t, n, isa) << " row " << r;
                }
        }
    }
}

TEST(KQuantKernels, VecDotAndGemm) {
    for (DType t : kWeightTypes)
        for (int64_t n : kSizes) {
            const Case c = make_case(t, n, 700 + (uint64_t)n);
            const int64_t nb = n / QK_K;
            const size_t wrow = row_size(t, n), xrow = row_size(DType::Q8_K, n);
            // Reference results and tolerances for every (row, column).
            const size_t R = c.w.size(), C = c.xq.size();
            std::vector<double> ref(R * C), tol(R * C);
            for (size_t r = 0; r < R; ++r) {
                const auto w = dequantize(t, c.w[r].data(), n);
                const auto off = min_offsets(t, c.w[r].data(), n);
                for (size_t col = 0; col < C; ++col) {
                    ref[r * C + col] = quant::ref_traits(t)->vec_dot(n, c.w[r].data(), c.xq[col].data());
                    const auto x = dequantize(DType::Q8_K, c.xq[col].data(), n);
                    tol[r * C + col] = dot_tolerance(nb, dot_magnitude(w, off, x));
                }
            }
            // Packed weight matrix (rows padded by 3 blocks to test ld_w) and activation matrix (ld_x).
            const size_t ld_w = wrow + 3 * block_bytes(t), ld_x = xrow + block_bytes(DType::Q8_K);
            std::vector<uint8_t> W(ld_w * R, 0xEE), X(ld_x * C, 0xEE);
            for (size_t r = 0; r < R; ++r) memcpy(&W[r * ld_w], c.w[r].data(), wrow);
            for (size_t col = 0; col < C; ++col) memcpy(&X[col * ld_x], c.xq[col].data(), xrow);

            for (Isa isa : isa_levels()) {
                const cpu::CpuKernels* k = cpu::cpu_kernels(t, isa);
                int bad = 0;  // report the first few mismatches of this (type, n, isa) only
                auto check = [&](float got, size_t r, size_t col, const std::string& what) {
                    const double err = std::fabs((double)got - ref[r * C + col]);
                    if (!(err <= tol[r * C + col]) && ++bad <= 5)
                        ADD_FAILURE() << label(t, n, isa) << " " << what << " row " << r << " col " << col << ": got "
                                      << got << ", reference " << ref[r * C + col] << ", tolerance "
                                      << tol[r * C + col];
                };
                for (size_t r = 0; r < R; ++r)
                    for (size_t col = 0; col < C; ++col) {
                        float s = NAN;
                        k->vec_dot(n, &s, c.w[r].data(), c.xq[col].data());
                        check(s, r, col, "vec_dot");
                    }
                for (int nr : kTileSizes) {
                    for (int nc : kTileSizes) {
                        const size_t ld_s = (size_t)nr + 2;
                        std::vector<float> S(ld_s * nc, -7.0f);
                        k->gemm(n, S.data(), ld_s, W.data(), ld_w, nr, X.data(), ld_x, nc);
                        const std::string what = "gemm nr=" + std::to_string(nr) + " nc=" + std::to_string(nc);
                        for (int col = 0; col < nc; ++col)
                            for (size_t r = 0; r < ld_s; ++r) {
                                const float got = S[col * ld_s + r];
                                if ((int)r >= nr) {
                                    if (got != -7.0f && ++bad <= 5) ADD_FAILURE() << what << " wrote outside the tile";
                                    continue;
                                }
                                check(got, r, (size_t)col, what);
                            }
                    }
                }
                EXPECT_EQ(bad, 0) << label(t, n, isa) << ": vec_dot/gemm results outside the tolerance";
            }
        }
}

// Fast kernels on activations from the fast quantizer, weights never seen by the reference
// quantizer: float-dot agreement on a longer row with many random blocks.
TEST(KQuantKernels, RandomBlocksLongRow) {
    Rng rng(808);
    const int64_t n = 64 * QK_K;
    for (DType t : kWeightTypes) {
        const auto q = random_blocks(rng, t, n);
        const auto w = dequantize(t, q.data(), n);
        const auto off = min_offsets(t, q.data(), n);
        const auto xf = random_row(rng, n, 1);
        for (Isa isa : isa_levels()) {
            const cpu::CpuKernels* k = cpu::cpu_kernels(t, isa);
            std::vector<uint8_t> xq(row_size(DType::Q8_K, n));
            k->from_float(xf.data(), xq.data(), n);
            const auto x = dequantize(DType::Q8_K, xq.data(), n);
            double want = 0;
            for (int64_t e = 0; e < n; ++e) want += (double)w[e] * x[e];
            float s = NAN;
            k->vec_dot(n, &s, q.data(), xq.data());
            EXPECT_NEAR(s, want, dot_tolerance(n / QK_K, dot_magnitude(w, off, x))) << label(t, n, isa);
        }
    }
}

// ================================================================================================
// KQuantBench: rough single-thread speed (run with --gtest_also_run_disabled_tests).

TEST(KQuantBench, DISABLED_Speed) {
    const int64_t n = 4096, rows = 4096;
    Rng rng(909);
    std::vector<float> xf = random_row(rng, n, 1);
    for (DType t : kWeightTypes) {
        const size_t wrow = row_size(t, n);
        std::vector<uint8_t> W(wrow * rows);
        for (int64_t r = 0; r < rows; ++r) {
            const auto q = r < 8 ? quantize(t, random_row(rng, n, (int)r)) : random_blocks(rng, t, n);
            memcpy(&W[r * wrow], q.data(), wrow);
        }
        for (Isa isa : isa_levels()) {
            if (isa == Isa::Scalar) continue;
            const cpu::CpuKernels* k = cpu::cpu_kernels(t, isa);
            std::vector<uint8_t> xq(row_size(DType::Q8_K, n) * 64);
            for (int c = 0; c < 64; ++c) k->from_float(xf.data(), &xq[c * row_size(DType::Q8_K, n)], n);
            std::vector<float> out(rows * 64);
            // vec_dot over the matrix (decode-like)
            double best = 1e30;
            for (int it = 0; it < 5; ++it) {
                const auto t0 = std::chrono::steady_clock::now();
                for (int64_t r = 0; r < rows; ++r) k->vec_dot(n, &out[r], &W[r * wrow], xq.data());
                best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
            // gemm with 64 columns (prompt-like), tiles of 4 rows
            double best_g = 1e30;
            for (int it = 0; it < 3; ++it) {
                const auto t0 = std::chrono::steady_clock::now();
                for (int64_t r = 0; r < rows; r += 4)
                    k->gemm(n, &out[r], rows, &W[r * wrow], wrow, 4, xq.data(), row_size(DType::Q8_K, n), 64);
                best_g = std::min(best_g, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
            printf("  %-7s %-12s vec_dot %6.2f GB/s (%5.2f ms)   gemm x64: %7.1f GMAC/s\n", dtype_name(t),
                   cpu::isa_name(isa), (double)W.size() / best * 1e-9, best * 1e3,
                   (double)n * rows * 64 / best_g * 1e-9);
        }
    }
}
