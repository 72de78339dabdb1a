// Scaffolding the Vulkan op tests share (test_vulkan_ops.cpp, _mla, _moe, _int8): random data, NMSE,
// random weights with their reference dequantization and product, and (with YITI_VULKAN) the test
// device, host <-> device copies, contexts with lowered limits and a fixture base that skips
// without a device.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#ifdef YITI_VULKAN
#include "vulkan/context.h"
#endif

namespace yiti::test {

// For the tests' `using namespace yiti::test`.
using yiti::DType;
#ifdef YITI_VULKAN
namespace vk = yiti::vk;
#endif

// Deterministic uniform values in [-1, 1) (xorshift64).
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    uint64_t bits() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
    float next() { return (float)((bits() >> 11) * 0x1p-53 * 2.0 - 1.0); }
    std::vector<float> vec(size_t n, float scale = 1.0f) {
        std::vector<float> v(n);
        for (auto& x : v) x = next() * scale;
        return v;
    }
    // A uniform integer in [0, n).
    int below(int n) { return std::min(n - 1, (int)((next() + 1.0f) * 0.5f * n)); }
};

// sum (got - ref)^2 / sum ref^2 (the plain sum of squares where ref is all zero).
inline double nmse(const std::vector<float>& got, const std::vector<double>& ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const double d = (double)got[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

// The index of the first element where a and b differ bit for bit (-1: none; the sizes must match).
inline int64_t first_diff(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return 0;
    for (size_t i = 0; i < a.size(); ++i)
        if (memcmp(&a[i], &b[i], 4) != 0) return (int64_t)i;
    return -1;
}

inline std::vector<double> to_double(const std::vector<float>& v) {
    return std::vector<double>(v.begin(), v.end());
}

// A random weight of type t, [n_out][n_in], as GGUF bytes, and its reference dequantization.
struct HostWeight {
    std::vector<uint8_t> bytes;
    std::vector<float> deq;  // [n_out][n_in]
    Tensor tensor;           // "test.weight", a view of bytes
};

HostWeight make_weight(DType t, int64_t n_in, int64_t n_out, uint64_t seed);

// y[c][r] = sum_k deq[r][k] x[c][k], in double.
std::vector<double> ref_mul_mat(const HostWeight& w, int64_t n_in, int64_t n_out, const std::vector<float>& x,
                                int64_t n_cols);

#ifdef YITI_VULKAN

// The Vulkan device the tests run on: YITI_TEST_VK_DEVICE (e.g. "vulkan1") or the first usable
// Vulkan device; -1 (with *why) when there is none.
int test_device(std::string* why);

template <class T>
vk::Buffer to_device(vk::Context& ctx, const std::vector<T>& v) {
    vk::Buffer b = ctx.alloc(v.size() * sizeof(T), "test data");
    ctx.upload(b.view(), v.data(), v.size() * sizeof(T));
    return b;
}

template <class T = float>
std::vector<T> from_device(vk::Context& ctx, const vk::Buffer& b, size_t n) {
    std::vector<T> v(n);
    ctx.download(b.view(), v.data(), n * sizeof(T));
    return v;
}

// A context on device `index` with its limits lowered (0: the device's), to run the split paths.
std::unique_ptr<vk::Context> limited_context(int index, uint64_t max_storage_range, uint64_t max_alloc = 0);

// A fixture base: one context on the test device per suite (ctx_, index_); every test skips
// without a device. Suite is the derived fixture (each suite its own statics).
template <class Suite>
class VulkanSuite : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        std::string why;
        const int idx = test_device(&why);
        if (idx < 0) {
            skip_why_ = new std::string(why);
            return;
        }
        index_ = idx;
        ctx_ = vk::Context::create(idx).release();
    }
    static void TearDownTestSuite() {
        delete ctx_;
        ctx_ = nullptr;
        delete skip_why_;
        skip_why_ = nullptr;
    }
    void SetUp() override {
        if (!ctx_) GTEST_SKIP() << *skip_why_;
    }

    static inline vk::Context* ctx_ = nullptr;
    static inline int index_ = 0;
    static inline std::string* skip_why_ = nullptr;
};

#endif  // YITI_VULKAN

}  // namespace yiti::test
