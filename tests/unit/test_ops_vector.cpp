// The AVX-512 forms of the element-wise operators against the generic loops (cpu/attention_impl.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "cpu/attention_impl.h"
#include "core/fp16.h"
#include "cpu/kernels.h"
#include "cpu/ops.h"

using namespace yiti;

namespace {

bool have_avx512() { return (int)cpu::cpu_best_isa() >= (int)cpu::Isa::AVX512; }

// Positions where the two float arrays differ bit for bit (NaN compares by being NaN).
std::vector<size_t> bit_diffs(const std::vector<float>& a, const std::vector<float>& b) {
    std::vector<size_t> d;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) && std::isnan(b[i])) continue;
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) d.push_back(i);
    }
    return d;
}

}  // namespace

// silu(g) * up with the exponential correctly rounded to float (through long double), rounded as
// the generic loop rounds the rest.
float silu_mul_ref(float g, float u) {
    const float e = (float)std::exp(-(long double)g);
    return g / (1.0f + e) * u;
}

// Floats in [-110, 110] at a stride (|g| < 8, where SwiGLU's inputs lie, at every 37th float),
// infinities, NaN, zeros, lengths with a tail. The vector form rounds the exponential correctly;
// glibc's expf (the generic loop) is within 0.502 ulp and so differs from it on a few inputs in
// 100000 (exhaustively over [-110, 110]: 73777 of 2.24e9 floats), each time by one ulp of e.
TEST(OpsVector, SiluMulRoundsLikeGeneric) {
    if (!have_avx512()) GTEST_SKIP() << "no AVX-512";
    std::vector<float> g;
    for (float v = -110.0f; v <= 110.0f;) {
        g.push_back(v);
        if (std::fabs(v) < 8) {  // 37 * 16 floats on (through zero, from the negative side)
            int32_t b;
            memcpy(&b, &v, 4);
            b = b < 0 ? (b & 0x7FFFFFFF) >= 37 * 16 ? b - 37 * 16 : 0 : b + 37 * 16;
            memcpy(&v, &b, 4);
        } else {
            v += 1e-3f;
        }
    }
    for (float v : {INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 1e-45f, -88.7201767f, 88.7f, 103.9f, 104.0f}) g.push_back(v);
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    std::vector<float> up(g.size());
    for (auto& u : up) u = nd(rng);
    ASSERT_GT(g.size(), 1000000u);
    for (size_t n : {g.size(), (size_t)13, (size_t)16, (size_t)37}) {
        // vec holds up to 16 values past the n given: they must stay as they are.
        std::vector<float> gen(g.begin(), g.begin() + (long)n), ref(n);
        std::vector<float> vec(g.begin(), g.begin() + (long)std::min(g.size(), n + 16));
        for (size_t i = 0; i < n; ++i) ref[i] = silu_mul_ref(g[i], up[i]);
        cpu::silu_mul_generic(gen.data(), up.data(), (int64_t)n);
        cpu::silu_mul_avx512(vec.data(), up.data(), (int64_t)n);
        const auto d = bit_diffs(ref, vec);
        EXPECT_TRUE(d.empty()) << d.size() << " of " << n << " differ from the correctly rounded form, first at g = "
                               << g[d.empty() ? 0 : d[0]] << ": " << ref[d.empty() ? 0 : d[0]] << " vs "
                               << vec[d.empty() ? 0 : d[0]];
        EXPECT_LE(bit_diffs(gen, vec).size(), n / 10000) << "n = " << n;
        EXPECT_EQ(0, memcmp(vec.data() + n, g.data() + n, (vec.size() - n) * sizeof(float))) << "wrote past n = " << n;
    }
}

TEST(OpsVector, RmsNormMatchesGenericBitForBit) {
    if (!have_avx512()) GTEST_SKIP() << "no AVX-512";
    std::mt19937 rng(6);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int64_t n : {1, 7, 8, 17, 64, 576, 2048, 2051, 5632, 7168}) {
        std::vector<float> x((size_t)n), w((size_t)n);
        for (auto& v : x) v = nd(rng) * 40.0f;
        for (auto& v : w) v = nd(rng);
        std::vector<float> a((size_t)n), b((size_t)n);
        cpu::rms_norm_generic(x.data(), w.data(), n, 1e-5f, a.data());
        cpu::rms_norm_avx512(x.data(), w.data(), n, 1e-5f, b.data());
        EXPECT_TRUE(bit_diffs(a, b).empty()) << "n = " << n;
    }
}

// Every 7th float bit pattern (all exponents: F16 normals, subnormals, overflow to infinity, the
// rounding ties), infinities and NaNs of both signs, through the KV cache's F16 store.
TEST(OpsVector, Fp16StoreMatchesGenericBitForBit) {
    if (!have_avx512()) GTEST_SKIP() << "no AVX-512";
    std::vector<float> x;
    for (uint64_t b = 0; b <= 0xFFFFFFFFull; b += 7 * 4096 + 7) {
        float f;
        const uint32_t u = (uint32_t)b;
        memcpy(&f, &u, 4);
        x.push_back(f);
    }
    for (float f : {INFINITY, -INFINITY, NAN, -NAN, 65504.0f, 65520.0f, -65520.0f, 6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f})
        x.push_back(f);
    for (int i = 0; i < 100000; ++i) x.push_back(1.0f + (float)i * 0x1p-23f);  // every tie and rounding of [1, 1.012)
    std::vector<uint16_t> a(x.size()), b(x.size());
    for (size_t i = 0; i < x.size(); ++i) a[i] = fp32_to_fp16(x[i]);
    for (size_t n : {x.size(), (size_t)5, (size_t)16, (size_t)33}) {
        std::fill(b.begin(), b.end(), 0xAAAA);
        cpu::store_kv_row(DType::F16, x.data(), (uint8_t*)b.data(), (int64_t)n);
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n; ++i)
            if (a[i] != b[i] && bad++ == 0) first = i;
        EXPECT_EQ(bad, 0u) << "n = " << n << ", first at " << x[first] << ": " << a[first] << " vs " << b[first];
        if (n < x.size()) {
            EXPECT_EQ(b[n], 0xAAAA) << "wrote past the row";
        }
    }
}

// rope keeps each thread's last cos / sin table: a result must not depend on the calls before it
// (other parameters or positions), compared with the same call on a fresh thread.
TEST(OpsVector, RopeIndependentOfEarlierCalls) {
    cpu::RopeParams a, b;
    a.n_rot = b.n_rot = 64;
    b.freq_base = 1000000.0f;
    cpu::RopeParams c = b;
    c.ext_factor = 1.0f;
    c.freq_scale = 0.25f;
    c.n_ctx_orig = 4096;
    const std::vector<int32_t> p1 = {0, 5, 17}, p2 = {0, 5, 18};
    std::mt19937 rng(8);
    std::normal_distribution<float> nd;
    std::vector<float> x0(3 * 4 * 64);
    for (auto& v : x0) v = nd(rng);
    auto fresh = [&](const cpu::RopeParams& p, const std::vector<int32_t>& pos) {
        std::vector<float> y = x0;
        std::thread([&] { cpu::rope(p, y.data(), 3, 4, 64, pos.data()); }).join();
        return y;
    };
    struct Call {
        const cpu::RopeParams* p;
        const std::vector<int32_t>* pos;
    };
    const Call calls[] = {{&a, &p1}, {&b, &p1}, {&b, &p1}, {&b, &p2}, {&c, &p2}, {&a, &p2}, {&a, &p1}};
    for (const Call& k : calls) {
        std::vector<float> y = x0;
        cpu::rope(*k.p, y.data(), 3, 4, 64, k.pos->data());
        const std::vector<float> want = fresh(*k.p, *k.pos);
        EXPECT_EQ(0, memcmp(y.data(), want.data(), y.size() * sizeof(float)));
    }
}
