// Op tests of the float family (F32, F16, BF16) and the legacy quant family (Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, IQ4_NL, with Q8_0 / Q8_1 activations): the scalar reference against ggml's definitions
// (hand-built blocks), and every fast kernel variant from Scalar up to cpu_best_isa() against the
// reference.
//
// Error bounds (all written as named constants below, with the reasoning):
//  * to_float: fast == reference, bit for bit.
//  * activation quantization (Q8_0, Q8_1): fast == reference, byte for byte.
//  * vec_dot / gemm: within kFastDotSlack * (k + kFastDotDepth) * u * S of the reference, where
//    u = 2^-24, k = the number of terms one SIMD lane accumulates and S = sum of |terms|.
//  * reference vec_dot against a plain double dot of the dequantized rows: 2u relative (the
//    reference is exact but for its final rounding), plus the half rounding of Q8_1's s for the
//    min formats.
//  * round trip dequantize(quantize(x)): per-type fraction of the block's max |x| (derived from the
//    format's step size) or, for F16/BF16, a relative bound per element.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "cpu/kernels.h"
#include "quant/blocks.h"
#include "quant/quant.h"

namespace {

using yiti::DType;
using yiti::cpu::CpuKernels;
using yiti::cpu::Isa;
using yiti::quant::RefTraits;

// ------------------------------------------------------------------ bounds

// Unit roundoff of float.
constexpr double kU = 0x1p-24;

// Fast vec_dot / gemm against the reference. The fast kernels form exactly the reference's products
// (integer block sums are exact; d_w * d_y, a product of two halves, is exact in float; an FMA of a
// widened F16/BF16/F32 weight and an F32 activation forms the exact product), so they differ only in
// how the float partial sums are added. A sum of k terms with one rounding per addition is off by at
// most (k - 1) * u * sum|terms| whatever the order; every SIMD lane accumulates k terms (one per
// block, plus one per block for the m*s term of Q4_1/Q5_1; one per 8 elements for float types, as
// every SIMD variant has at least 8 lanes), then the lanes and accumulators are reduced in at most
// 6 steps and AVX2 adds up to 7 tail products. kFastDotDepth covers those extra additions and the
// reference's own final rounding; kFastDotSlack = 2 keeps the bound honest if a kernel rounds once
// more per term (e.g. a separate multiply before the add).
constexpr double kFastDotDepth = 16.0;
constexpr double kFastDotSlack = 2.0;

// Reference vec_dot against the plain double dot of the dequantized rows. Both are exact up to
// their final rounding for Q4_0/Q5_0/Q8_0/IQ4_NL and the float types (a dequantized value is a
// small integer times a half, exact in float), hence 2u relative, plus 1e-12 * S for the double
// accumulations. Q4_1/Q5_1 additionally: dequantizing q*d + m rounds twice (2u * S), and the
// reference uses Q8_1's stored s = half(d_y * sum q_y) with unrounded d_y where the plain dot has
// half(d_y) * sum q_y: two half roundings, at most 2^-10 * |m| * sum|x| per block (plus half's
// smallest subnormal step, 2^-25 absolute, times |m|).
constexpr double kRefVsPlainRel = 2.0 * kU;
constexpr double kRefVsPlainAbs = 1e-12;
constexpr double kMinTermRel = 0x1p-10 * 1.01;
constexpr double kMinTermAbs = 0x1p-25;

// Round trip |dequantize(quantize(x)) - x| <= bound * max|x| of the block. For each format the
// quantization step error plus the rounding of the scales to half (a code of magnitude <= Q times a
// relative 2^-11 error of d):
//   Q4_0   d = amax/8, the top code clips (+8 -> 7): 1 step = amax/8, + 8 d 2^-11      -> 0.1255
//   Q4_1   half a step of (max-min)/15 <= amax/15, + d and m roundings (3 amax 2^-11)  -> 0.0682
//   Q5_0   d = amax/16, top code clips: amax/16, + 16 d 2^-11                          -> 0.0630
//   Q5_1   half a step of (max-min)/31 <= amax/31, + 3 amax 2^-11                      -> 0.0337
//   Q8_0   half a step of amax/127, + 127 d 2^-11                                       -> 0.00443
//   IQ4_NL no closed form (the scale is a least-squares fit): with d near amax/127 .. amax/113 the
//          widest table gap (24, between 89 and 113) halved is ~0.1 amax; the measured worst case
//          over 20000 random blocks (Gaussian, shifted, with outliers) is 0.114 amax -> 0.125.
// F16 / BF16 round to nearest: relative 2^-11 / 2^-8 per element (normal range), F32 exact; below
// half's normal range (2^-14) the F16 error is at most half its subnormal step, 2^-25.
constexpr double kHalfSubnormalAbs = 0x1p-25;
double round_trip_bound(DType t) {
    switch (t) {
        case DType::Q4_0: return 0.126;
        case DType::Q4_1: return 0.069;
        case DType::Q5_0: return 0.063;
        case DType::Q5_1: return 0.034;
        case DType::Q8_0:
        case DType::Q8_1: return 0.0045;
        case DType::IQ4_NL: return 0.125;
        default: return 0.0;
    }
}
double round_trip_rel_bound(DType t) {
    switch (t) {
        case DType::F16: return 0x1p-11;
        case DType::BF16: return 0x1p-8;
        default: return 0.0;
    }
}

// ------------------------------------------------------------------ helpers

bool is_float_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
bool has_min(DType t) { return t == DType::Q4_1 || t == DType::Q5_1; }
int64_t block_size(DType t) { return yiti::dtype_info(t).block_size; }

std::vector<Isa> isas() {
    std::vector<Isa> v;
    for (int i = 0; i <= (int)yiti::cpu::cpu_best_isa(); ++i) v.push_back((Isa)i);
    return v;
}

std::vector<int64_t> sizes(DType t) {
    if (is_float_type(t)) return {1, 7, 32, 33, 256, 4096, 4128, 4133};
    return {32, 256, 4096, 4128};
}

// Deterministic generator independent of the standard library's distributions.
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ULL + 1) {}
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    double uniform() { return (double)(next() >> 11) * 0x1p-53; }  // [0, 1)
    double normal() {
        const double u1 = uniform() + 0x1p-60, u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
};

// Test data: Gaussian blocks of 32 with per-block magnitudes over 2^-4 .. 2^4, some blocks shifted
// off zero (so min-based formats see asymmetric ranges), a few outliers, and (for longer rows) one
// all-zero block and one constant block.
std::vector<float> make_data(int64_t n, uint64_t seed) {
    Rng rng(seed);
    std::vector<float> x((size_t)n);
    for (int64_t b0 = 0; b0 < n; b0 += 32) {
        const double scale = std::exp2(rng.uniform() * 8.0 - 4.0);
        const double shift = (b0 / 32) % 3 == 0 ? (rng.uniform() * 2.0 - 1.0) * scale : 0.0;
        for (int64_t i = b0; i < std::min(n, b0 + 32); ++i) {
            double v = rng.normal() * scale + shift;
            if (rng.uniform() < 1.0 / 64) v *= 8.0;
            x[(size_t)i] = (float)v;
        }
    }
    if (n >= 128) {
        for (int i = 32; i < 64; ++i) x[(size_t)i] = 0.0f;
        for (int i = 64; i < 96; ++i) x[(size_t)i] = 0.75f;
    }
    return x;
}

const RefTraits& ref(DType t) {
    const RefTraits* r = yiti::quant::ref_traits(t);
    if (!r) {
        ADD_FAILURE() << "no reference for " << yiti::dtype_name(t);
        abort();
    }
    return *r;
}

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x) {
    std::vector<uint8_t> q(yiti::row_size(t, (int64_t)x.size()));
    ref(t).from_float(x.data(), q.data(), (int64_t)x.size());
    return q;
}

std::vector<float> dequantize(DType t, const void* q, int64_t n) {
    std::vector<float> y((size_t)n);
    ref(t).to_float(q, y.data(), n);
    return y;
}

// Activation row in t's vec_dot_type, built by the reference.
std::vector<uint8_t> make_act(DType t, const std::vector<float>& x) { return quantize(ref(t).vec_dot_type, x); }

// The min m of block b of a Q4_1 / Q5_1 row (0 for other types).
float block_min(DType t, const uint8_t* row, int64_t b) {
    if (!has_min(t)) return 0.0f;
    uint16_t h;
    memcpy(&h, row + b * yiti::dtype_info(t).type_size + 2, 2);
    return yiti::fp16_to_fp32(h);
}

// S = sum_i (|w_i| + 2 |m_b(i)|) |x_i| over the dequantized rows: bounds the sum of |terms| of every
// way of computing the dot product (q*d*y terms, and the m*s terms of the min formats).
double abs_scale(DType t, const uint8_t* wrow, const float* wd, const float* xd, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const double m = std::fabs(block_min(t, wrow, i / 32));
        s += (std::fabs((double)wd[i]) + 2.0 * m) * std::fabs((double)xd[i]);
    }
    return s;
}

double fast_dot_bound(DType t, int64_t n, double S) {
    double k;
    if (is_float_type(t)) k = (double)((n + 7) / 8);
    else k = (double)(n / 32) * (has_min(t) ? 2.0 : 1.0);
    return kFastDotSlack * (k + kFastDotDepth) * kU * S;
}

std::string ctx(DType t, Isa isa, int64_t n) {
    return std::string(yiti::dtype_name(t)) + " isa=" + yiti::cpu::isa_name(isa) + " n=" + std::to_string(n);
}

uint16_t h(float f) { return yiti::fp32_to_fp16(f); }

// ------------------------------------------------------------------ per-type tests

class OpsFloatLegacy : public ::testing::TestWithParam<DType> {};

TEST_P(OpsFloatLegacy, KernelsExistForEveryIsa) {
    const DType t = GetParam();
    for (Isa isa : isas()) {
        const CpuKernels* k = yiti::cpu::cpu_kernels(t, isa);
        ASSERT_NE(k, nullptr) << ctx(t, isa, 0);
        EXPECT_EQ(k->vec_dot_type, ref(t).vec_dot_type) << ctx(t, isa, 0);
        EXPECT_NE(k->to_float, nullptr);
        EXPECT_NE(k->vec_dot, nullptr);
        EXPECT_NE(k->gemm, nullptr);
        if (k->vec_dot_type == DType::F32) EXPECT_EQ(k->from_float, nullptr);
        else EXPECT_NE(k->from_float, nullptr);
    }
}

TEST_P(OpsFloatLegacy, ToFloatMatchesReferenceExactly) {
    const DType t = GetParam();
    for (int64_t n : sizes(t)) {
        const auto q = quantize(t, make_data(n, 100 + n));
        const auto want = dequantize(t, q.data(), n);
        for (Isa isa : isas()) {
            const CpuKernels* k = yiti::cpu::cpu_kernels(t, isa);
            std::vector<float> got((size_t)n + 1, -12345.0f);  // one guard element past the end
            k->to_float(q.data(), got.data(), n);
            for (int64_t i = 0; i < n; ++i) {
                if (yiti::fp32_to_bits(got[i]) != yiti::fp32_to_bits(want[i])) {
                    ADD_FAILURE() << ctx(t, isa, n) << " element " << i << ": " << got[i] << " != " << want[i];
                    break;
                }
            }
            EXPECT_EQ(got[(size_t)n], -12345.0f) << ctx(t, isa, n) << " wrote past the end";
        }
    }
}

TEST_P(OpsFloatLegacy, ActivationQuantizeMatchesReferenceExactly) {
    const DType t = GetParam();
    const DType vdt = ref(t).vec_dot_type;
    if (vdt == DType::F32) GTEST_SKIP() << "F32 activations need no quantization";
    for (int64_t n : sizes(t)) {
        auto x = make_data(n, 200 + n);
        // One block of exact .5 ties after scaling (amax 127 -> d = 1): catches round-half-even.
        if (n >= 64) {
            x[0] = 127.0f;
            for (int j = 1; j < 32; ++j) x[(size_t)j] = (float)j - 15.5f;
        }
        const auto want = quantize(vdt, x);
        for (Isa isa : isas()) {
            const CpuKernels* k = yiti::cpu::cpu_kernels(t, isa);
            std::vector<uint8_t> got(want.size() + 1, 0xA5);
            k->from_float(x.data(), got.data(), n);
            EXPECT_EQ(got.back(), 0xA5) << ctx(t, isa, n) << " wrote past the end";
            got.pop_back();
            for (size_t i = 0; i < want.size(); ++i) {
                if (got[i] != want[i]) {
                    ADD_FAILURE() << ctx(t, isa, n) << " activation byte " << i << " (block "
                                  << i / yiti::dtype_info(vdt).type_size << "): " << (int)got[i]
                                  << " != " << (int)want[i];
                    break;
                }
            }
        }
    }
}

TEST_P(OpsFloatLegacy, VecDotMatchesReference) {
    const DType t = GetParam();
    const DType vdt = ref(t).vec_dot_type;
    for (int64_t n : sizes(t)) {
        for (int rep = 0; rep < 3; ++rep) {
            const auto w = quantize(t, make_data(n, 300 + 7 * n + rep));
            const auto x = make_act(t, make_data(n, 400 + 7 * n + rep));
            const float want = ref(t).vec_dot(n, w.data(), x.data());
            const auto wd = dequantize(t, w.data(), n);
            const auto xd = dequantize(vdt, x.data(), n);
            const double bound = fast_dot_bound(t, n, abs_scale(t, w.data(), wd.data(), xd.data(), n));
            for (Isa isa : isas()) {
                const CpuKernels* k = yiti::cpu::cpu_kernels(t, isa);
                float got = NAN;
                k->vec_dot(n, &got, w.data(), x.data());
                EXPECT_NEAR(got, want, bound) << ctx(t, isa, n) << " rep " << rep;
            }
        }
    }
}

TEST_P(OpsFloatLegacy, GemmMatchesReference) {
    const DType t = GetParam();
    const DType vdt = ref(t).vec_dot_type;
    constexpr int kMaxR = 17, kMaxC = 17;
    const int counts[] = {1, 3, 4, 5, 8, 17};
    for (int64_t n : {(int64_t)32, (int64_t)256, (int64_t)4128}) {
        // Rows and columns padded apart (ld larger than a row) to check the strides are honoured.
        const size_t wrow = yiti::row_size(t, n), xrow = yiti::row_size(vdt, n);
        const size_t ldw = wrow + 64, ldx = xrow + 32;
        std::vector<uint8_t> W(ldw * kMaxR), X(ldx * kMaxC);
        std::vector<double> S(kMaxR * kMaxC);
        std::vector<float> want(kMaxR * kMaxC);
        std::vector<std::vector<float>> wd(kMaxR), xd(kMaxC);
        for (int r = 0; r < kMaxR; ++r) {
            const auto q = quantize(t, make_data(n, 1000 + 31 * r + n));
            memcpy(W.data() + r * ldw, q.data(), wrow);
            wd[r] = dequantize(t, q.data(), n);
        }
        for (int c = 0; c < kMaxC; ++c) {
            const auto q = make_act(t, make_data(n, 5000 + 37 * c + n));
            memcpy(X.data() + c * ldx, q.data(), xrow);
            xd[c] = dequantize(vdt, q.data(), n);
        }
        for (int r = 0; r < kMaxR; ++r)
            for (int c = 0; c < kMaxC; ++c) {
                want[r * kMaxC + c] = ref(t).vec_dot(n, W.data() + r * ldw, X.data() + c * ldx);
                S[r * kMaxC + c] = abs_scale(t, W.data() + r * ldw, wd[r].data(), xd[c].data(), n);
            }
        for (Isa isa : isas()) {
            const CpuKernels* k = yiti::cpu::cpu_kernels(t, isa);
            for (int nr : counts)
                for (int nc : counts) {
                    const size_t lds = (size_t)nr + 3;
                    std::vector<float> s(lds * nc, -777.0f);
                    k->gemm(n, s.data(), lds, W.data(), ldw, nr, X.data(), ldx, nc);
                    int bad = 0;
                    for (int c = 0; c < nc; ++c)
                        for (size_t r = 0; r < lds; ++r) {
                            const float got = s[c * lds + r];
                            if (r >= (size_t)nr) {
                                if (got != -777.0f && bad++ < 3)
                                    ADD_FAILURE() << ctx(t, isa, n) << " nr=" << nr << " nc=" << nc
                                                  << " wrote outside the block at r=" << r << " c=" << c;
                                continue;
                            }
                            const float w = want[r * kMaxC + c];
                            const double bound = fast_dot_bound(t, n, S[r * kMaxC + c]);
                            if (!(std::fabs((double)got - (double)w) <= bound) && bad++ < 3)
                                ADD_FAILURE() << ctx(t, isa, n) << " nr=" << nr << " nc=" << nc << " r=" << r
                                              << " c=" << c << ": " << got << " vs " << w << " bound " << bound;
                        }
                }
        }
    }
}

// The reference dot product is the plain dot product of the dequantized rows.
TEST_P(OpsFloatLegacy, ReferenceDotMatchesPlainDot) {
    const DType t = GetParam();
    const DType vdt = ref(t).vec_dot_type;
    for (int64_t n : sizes(t)) {
        for (int rep = 0; rep < 3; ++rep) {
            const auto w = quantize(t, make_data(n, 600 + 7 * n + rep));
            const auto x = make_act(t, make_data(n, 700 + 7 * n + rep));
            const auto wd = dequantize(t, w.data(), n);
            const auto xd = dequantize(vdt, x.data(), n);
            double plain = 0.0, min_terms = 0.0, min_abs = 0.0;
            for (int64_t i = 0; i < n; ++i) plain += (double)wd[i] * (double)xd[i];
            if (has_min(t)) {
                for (int64_t b = 0; b < n / 32; ++b) {
                    double sx = 0.0;
                    for (int64_t i = b * 32; i < b * 32 + 32; ++i) sx += std::fabs((double)xd[i]);
                    const double m = std::fabs(block_min(t, w.data(), b));
                    min_terms += m * sx;
                    min_abs += m;
                }
            }
            const double S = abs_scale(t, w.data(), wd.data(), xd.data(), n);
            double bound = kRefVsPlainRel * std::fabs(plain) + kRefVsPlainAbs * S;
            if (has_min(t)) bound += kMinTermRel * min_terms + kMinTermAbs * min_abs + 2.0 * kU * S;
            const float got = ref(t).vec_dot(n, w.data(), x.data());
            EXPECT_NEAR(got, plain, bound) << ctx(t, Isa::Scalar, n) << " rep " << rep;
        }
    }
}

TEST_P(OpsFloatLegacy, ReferenceRoundTrip) {
    const DType t = GetParam();
    for (int64_t n : sizes(t)) {
        const auto x = make_data(n, 800 + n);
        const auto y = dequantize(t, quantize(t, x).data(), n);
        const int64_t bs = std::max<int64_t>(block_size(t), 1);
        for (int64_t b0 = 0; b0 < n; b0 += bs) {
            double amax = 0.0;
            for (int64_t i = b0; i < b0 + bs; ++i) amax = std::max(amax, std::fabs((double)x[i]));
            for (int64_t i = b0; i < b0 + bs; ++i) {
                const double err = std::fabs((double)y[i] - (double)x[i]);
                const double bound = is_float_type(t) ? round_trip_rel_bound(t) * std::fabs((double)x[i]) +
                                                            kHalfSubnormalAbs * (t == DType::F16)
                                                      : round_trip_bound(t) * amax;
                if (!(err <= bound)) {
                    ADD_FAILURE() << ctx(t, Isa::Scalar, n) << " element " << i << ": " << x[i] << " -> " << y[i]
                                  << ", error " << err << " > " << bound;
                    return;
                }
            }
        }
    }
}

// The activation format of each type must round-trip too (Q8_0 / Q8_1 bounds).
TEST_P(OpsFloatLegacy, ActivationRoundTrip) {
    const DType vdt = ref(GetParam()).vec_dot_type;
    if (vdt == DType::F32) GTEST_SKIP();
    const int64_t n = 4128;
    const auto x = make_data(n, 900);
    const auto y = dequantize(vdt, quantize(vdt, x).data(), n);
    for (int64_t b0 = 0; b0 < n; b0 += 32) {
        double amax = 0.0;
        for (int64_t i = b0; i < b0 + 32; ++i) amax = std::max(amax, std::fabs((double)x[i]));
        for (int64_t i = b0; i < b0 + 32; ++i)
            ASSERT_LE(std::fabs((double)y[i] - (double)x[i]), round_trip_bound(vdt) * amax) << "element " << i;
    }
}

std::string type_name(const ::testing::TestParamInfo<DType>& info) { return yiti::dtype_name(info.param); }

}  // namespace

namespace yiti {
// gtest prints the parameter of a failing test with this (internal linkage: no clash with other tests).
[[maybe_unused]] static void PrintTo(DType t, std::ostream* os) { *os << dtype_name(t); }
}  // namespace yiti

namespace {

INSTANTIATE_TEST_SUITE_P(Float, OpsFloatLegacy, ::testing::Values(DType::F32, DType::F16, DType::BF16), type_name);
INSTANTIATE_TEST_SUITE_P(Legacy, OpsFloatLegacy,
                         ::testing::Values(DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                                           DType::IQ4_NL),
                         type_name);

// ------------------------------------------------------------------ the specification, by hand

// Dequantizes one hand-built block with the reference and every fast kernel; all must give `want`.
void expect_block(DType t, const void* block, const std::vector<float>& want) {
    const int64_t n = (int64_t)want.size();
    std::vector<float> got((size_t)n);
    ref(t).to_float(block, got.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(got[i], want[i]) << yiti::dtype_name(t) << " reference, element " << i;
    if (t == DType::Q8_1) return;  // activation format only: no CPU kernels
    for (Isa isa : isas()) {
        std::fill(got.begin(), got.end(), NAN);
        yiti::cpu::cpu_kernels(t, isa)->to_float(block, got.data(), n);
        for (int64_t i = 0; i < n; ++i)
            EXPECT_EQ(got[i], want[i]) << yiti::dtype_name(t) << " " << yiti::cpu::isa_name(isa) << ", element " << i;
    }
}

TEST(LegacySpec, Q4_0NibbleOrder) {
    // Byte j: low nibble = element j, high nibble = element j + 16; x = (q - 8) * d.
    yiti::block_q4_0 b{};
    b.d = h(0.5f);
    for (int j = 0; j < 16; ++j) b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    std::vector<float> want = {-4.0f, -3.5f, -3.0f, -2.5f, -2.0f, -1.5f, -1.0f, -0.5f,  // elements 0..7
                               0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  2.5f,  3.0f,  3.5f,   // 8..15
                               3.5f,  3.0f,  2.5f,  2.0f,  1.5f,  1.0f,  0.5f,  0.0f,   // 16..23
                               -0.5f, -1.0f, -1.5f, -2.0f, -2.5f, -3.0f, -3.5f, -4.0f};
    expect_block(DType::Q4_0, &b, want);
}

TEST(LegacySpec, Q4_1Min) {
    // x = q * d + m.
    yiti::block_q4_1 b{};
    b.d = h(0.5f);
    b.m = h(-1.0f);
    for (int j = 0; j < 16; ++j) b.qs[j] = (uint8_t)(j | (15 << 4));
    std::vector<float> want;
    for (int j = 0; j < 16; ++j) want.push_back(-1.0f + 0.5f * (float)j);  // -1, -0.5, ..., 6.5
    for (int j = 0; j < 16; ++j) want.push_back(6.5f);
    expect_block(DType::Q4_1, &b, want);
}

TEST(LegacySpec, Q5_0HighBits) {
    // 5th bit of element j = bit j of qh (little-endian uint32); x = (q - 16) * d.
    yiti::block_q5_0 b{};
    b.d = h(1.0f);
    b.qs[0] = 0x21;   // element 0: low 1, element 16: 2
    b.qs[15] = 0xF3;  // element 15: 3, element 31: 15
    const uint32_t qh = (1u << 0) | (1u << 16) | (1u << 31);
    memcpy(b.qh, &qh, 4);
    std::vector<float> want(32, -16.0f);  // code 0 without the high bit
    want[0] = 1.0f;                       // 1 + 16 - 16
    want[16] = 2.0f;                      // 2 + 16 - 16
    want[15] = -13.0f;                    // 3 - 16
    want[31] = 15.0f;                     // 15 + 16 - 16
    expect_block(DType::Q5_0, &b, want);
    // The bytes of qh are little-endian: byte 2 bit 0 is element 16.
    EXPECT_EQ(b.qh[0], 0x01);
    EXPECT_EQ(b.qh[2], 0x01);
    EXPECT_EQ(b.qh[3], 0x80);
}

TEST(LegacySpec, Q5_1HighBitsAndMin) {
    yiti::block_q5_1 b{};
    b.d = h(0.5f);
    b.m = h(-4.0f);
    b.qs[0] = 0x21;
    b.qs[15] = 0xF3;
    const uint32_t qh = (1u << 0) | (1u << 16) | (1u << 31);
    memcpy(b.qh, &qh, 4);
    std::vector<float> want(32, -4.0f);  // code 0
    want[0] = 4.5f;                      // 17 * 0.5 - 4
    want[16] = 5.0f;                     // 18 * 0.5 - 4
    want[15] = -2.5f;                    // 3 * 0.5 - 4
    want[31] = 11.5f;                    // 31 * 0.5 - 4
    expect_block(DType::Q5_1, &b, want);
}

TEST(LegacySpec, Q8_0AndQ8_1Dequantize) {
    yiti::block_q8_0 a{};
    a.d = h(0.25f);
    for (int j = 0; j < 32; ++j) a.qs[j] = (int8_t)(j * 8 - 127);  // -127 .. 121
    std::vector<float> want;
    for (int j = 0; j < 32; ++j) want.push_back(0.25f * (float)(j * 8 - 127));
    expect_block(DType::Q8_0, &a, want);

    yiti::block_q8_1 b{};
    b.d = h(0.25f);
    b.s = h(123.0f);  // ignored by dequantization
    memcpy(b.qs, a.qs, 32);
    expect_block(DType::Q8_1, &b, want);
}

TEST(LegacySpec, IQ4_NLTableLookup) {
    // x = d * kvalues_iq4nl[nibble], nibbles in Q4_0 order.
    yiti::block_iq4_nl b{};
    b.d = h(2.0f);
    for (int j = 0; j < 16; ++j) b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    std::vector<float> want = {-254, -208, -166, -130, -98, -70, -44, -20, 2,   26,   50,   76,   106,  138,  178,  226,
                               226,  178,  138,  106,  76,  50,  26,  2,   -20, -44,  -70,  -98,  -130, -166, -208, -254};
    expect_block(DType::IQ4_NL, &b, want);
}

TEST(LegacySpec, Q4_0QuantizeScaleAndSign) {
    // The largest-magnitude element (with its sign) maps to code 0: d = max / -8.
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[(size_t)j] = (float)(j % 16) - 8.0f;  // max = -8 -> d = 1
    auto q = quantize(DType::Q4_0, x);
    yiti::block_q4_0 b;
    memcpy(&b, q.data(), sizeof b);
    EXPECT_EQ(b.d, h(1.0f));
    for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], (uint8_t)(j | (j << 4))) << j;

    for (int j = 0; j < 32; ++j) x[(size_t)j] = 8.0f - (float)(j % 16);  // max = +8 -> d = -1
    q = quantize(DType::Q4_0, x);
    memcpy(&b, q.data(), sizeof b);
    EXPECT_EQ(b.d, h(-1.0f));
    for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], (uint8_t)(j | (j << 4))) << j;
    const auto y = dequantize(DType::Q4_0, q.data(), 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[(size_t)j], x[(size_t)j]) << j;
}

TEST(LegacySpec, Q8QuantizeRoundsHalfAwayFromZero) {
    // amax = 127 gives d = 1, so every other element is an exact tie x.5.
    std::vector<float> x(32);
    x[0] = 127.0f;
    for (int j = 1; j < 32; ++j) x[(size_t)j] = (float)j - 15.5f;
    for (DType t : {DType::Q8_0, DType::Q8_1}) {
        const auto q = quantize(t, x);
        const int qs = t == DType::Q8_0 ? 2 : 4;
        uint16_t d;
        memcpy(&d, q.data(), 2);
        EXPECT_EQ(d, h(1.0f));
        EXPECT_EQ((int8_t)q[qs], 127);
        int sum = 127;
        for (int j = 1; j < 32; ++j) {
            const int want = j >= 16 ? j - 15 : j - 16;  // 0.5 -> 1, -0.5 -> -1, -14.5 -> -15
            EXPECT_EQ((int8_t)q[(size_t)(qs + j)], want) << yiti::dtype_name(t) << " element " << j;
            sum += want;
        }
        if (t == DType::Q8_1) {
            uint16_t s;
            memcpy(&s, q.data() + 2, 2);
            EXPECT_EQ(s, h((float)sum));  // s = d * sum(q)
        }
    }
}

TEST(LegacySpec, Q8_1SumField) {
    std::vector<float> x(32);
    x[0] = 127.0f;
    for (int j = 1; j < 32; ++j) x[(size_t)j] = (float)(j - 16);  // sum of codes 127 + 0
    const auto q = quantize(DType::Q8_1, x);
    yiti::block_q8_1 b;
    memcpy(&b, q.data(), sizeof b);
    EXPECT_EQ(b.d, 0x3C00);  // 1.0
    EXPECT_EQ(b.s, 0x57F0);  // 127.0
    for (int j = 1; j < 32; ++j) EXPECT_EQ(b.qs[j], j - 16);
}

TEST(LegacySpec, Q5_0QuantizeUsesHighBits) {
    // max = -16 -> d = 1, codes q = x + 16 cover 0..31, so every high bit of elements 16..31 is set.
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[(size_t)j] = (float)j - 16.0f;
    const auto q = quantize(DType::Q5_0, x);
    yiti::block_q5_0 b;
    memcpy(&b, q.data(), sizeof b);
    EXPECT_EQ(b.d, h(1.0f));
    uint32_t qh;
    memcpy(&qh, b.qh, 4);
    EXPECT_EQ(qh, 0xFFFF0000u);
    for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], (uint8_t)(j | (j << 4))) << j;
    const auto y = dequantize(DType::Q5_0, q.data(), 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[(size_t)j], x[(size_t)j]) << j;
}

TEST(LegacySpec, IQ4_NLQuantizeFindsExactScale) {
    // A block that is exactly 2 * table values must come back exact: d = 2, nibble = table index.
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[(size_t)j] = 2.0f * (float)yiti::kvalues_iq4nl[j % 16];
    const auto q = quantize(DType::IQ4_NL, x);
    yiti::block_iq4_nl b;
    memcpy(&b, q.data(), sizeof b);
    EXPECT_EQ(b.d, h(2.0f));
    for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], (uint8_t)(j | (j << 4))) << j;
    const auto y = dequantize(DType::IQ4_NL, q.data(), 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[(size_t)j], x[(size_t)j]) << j;
}

TEST(LegacySpec, ZeroAndConstantBlocks) {
    const std::vector<float> zero(32, 0.0f), cst(32, 0.75f);
    for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q8_1, DType::IQ4_NL}) {
        const auto y = dequantize(t, quantize(t, zero).data(), 32);
        for (float v : y) EXPECT_EQ(v, 0.0f) << yiti::dtype_name(t);
    }
    for (DType t : {DType::Q4_1, DType::Q5_1}) {  // d = 0, m = 0.75 (exact in half)
        const auto y = dequantize(t, quantize(t, cst).data(), 32);
        for (float v : y) EXPECT_EQ(v, 0.75f) << yiti::dtype_name(t);
    }
}

// IQ4_NL's non-linear grid should beat Q4_0 on Gaussian data (same 4.5 bits per weight).
TEST(LegacySpec, IQ4_NLBeatsQ4_0OnGaussianData) {
    const int64_t n = 4096;
    const auto x = make_data(n, 4242);
    auto sq_err = [&](DType t) {
        const auto y = dequantize(t, quantize(t, x).data(), n);
        double e = 0.0;
        for (int64_t i = 0; i < n; ++i) e += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        return e;
    };
    EXPECT_LT(sq_err(DType::IQ4_NL), sq_err(DType::Q4_0));
}

TEST(FloatSpec, HalfAndBfloatConversions) {
    // F16 1.0 = 0x3C00, -2.5 = 0xC100, smallest subnormal 2^-24 = 0x0001; BF16 is the top half of F32.
    const uint16_t f16[] = {0x3C00, 0xC100, 0x0001, 0x7BFF, 0x0000, 0x8000};
    const float f16_want[] = {1.0f, -2.5f, 0x1p-24f, 65504.0f, 0.0f, -0.0f};
    const uint16_t bf16[] = {0x3F80, 0xC020, 0x0001, 0x7F7F, 0x0000, 0x8000};
    const float bf16_want[] = {1.0f, -2.5f, 0x1p-133f, 0x1.FEp127f, 0.0f, -0.0f};
    // Padded to 37 elements so vector bodies and tails both see known values.
    std::vector<uint16_t> a(37), b(37);
    std::vector<float> aw(37), bw(37);
    for (int i = 0; i < 37; ++i) {
        a[(size_t)i] = f16[i % 6];
        aw[(size_t)i] = f16_want[i % 6];
        b[(size_t)i] = bf16[i % 6];
        bw[(size_t)i] = bf16_want[i % 6];
    }
    for (Isa isa : isas()) {
        std::vector<float> y(37);
        yiti::cpu::cpu_kernels(DType::F16, isa)->to_float(a.data(), y.data(), 37);
        for (int i = 0; i < 37; ++i)
            EXPECT_EQ(yiti::fp32_to_bits(y[(size_t)i]), yiti::fp32_to_bits(aw[(size_t)i])) << "f16 " << i;
        yiti::cpu::cpu_kernels(DType::BF16, isa)->to_float(b.data(), y.data(), 37);
        for (int i = 0; i < 37; ++i)
            EXPECT_EQ(yiti::fp32_to_bits(y[(size_t)i]), yiti::fp32_to_bits(bw[(size_t)i])) << "bf16 " << i;
    }
    // Reference quantization rounds to nearest even.
    EXPECT_EQ(yiti::fp32_to_bf16(1.0f + 0x1p-8f), 0x3F80);             // tie -> even (down)
    EXPECT_EQ(yiti::fp32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82);         // tie -> even (up)
    EXPECT_EQ(yiti::fp32_to_fp16(1.0f + 0x1p-11f), 0x3C00);            // tie -> even (down)
    EXPECT_EQ(yiti::fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3C02);        // tie -> even (up)
}

}  // namespace
