// Tests of the Vulkan integer products (vulkan/ops_int8.h): quantize_q8's activation format and
// mul_mat_q8 for every weight type it takes, 1, 3, 8 and 9 columns, row counts that are not a
// multiple of the kernel's 4 rows per workgroup, short rows (8 blocks: most threads idle) and long
// ones (K = 4096: 128 blocks, several per thread), split bindings. Both kernels run where the device
// has the integer dot product feature (lavapipe has it, not accelerated): the packed one (OpSDot)
// must give the unpacked one's floats bit for bit (3 columns of each type), so the algorithm CI
// tests is the one a GPU runs.
//
// The device: YITI_TEST_VK_DEVICE or the first usable Vulkan device, as common/vk_test.h picks it; the
// tests skip without one.
//
// Error bounds (NMSE = sum (got - ref)^2 / sum ref^2 over all outputs of a case):
//  * kEmulNmse = 1e-9 against the product, in double, of the reference dequantization of W
//    (quant::dequantize_row_ref) with the activation the GPU quantized (q * d, read back): what the
//    kernel computes, in other roundings. The integer sums are exact; what is left is the F32
//    roundings of D * (sc dot) + M * (mn sum) per block (a few u = 2^-24 relative to the larger
//    term), the reference's own roundings of each dequantized weight, and the F32 sum over the
//    row's blocks (u sqrt(K / 32) relative): NMSE ~1e-14 (measured at most 1.1e-14). One wrong
//    integer in a block of 32 (a quant, a scale, a min, a sum) gives far more than 1e-9.
//  * kF32Nmse = 4e-5 against vk::mul_mat (F32 activations, same weights; its tiled kernel, one
//    pipeline per type, is tested to 1e-9 against the reference in test_vulkan_ops.cpp): the
//    activations' 8-bit rounding. The test activations are uniform in [-1, 1): a block's scale is
//    d = amax / 127 with E[amax^2] = 32/34 for 32 values, the rounding error e = x - q d is uniform
//    in [-d/2, d/2], so E[e^2] = E[d^2] / 12 = (32/34) / (12 * 127^2) = 4.86e-6 against
//    E[x^2] = 1/3: a relative 1.46e-5 (a simulation gives 1.41e-5: the largest element of a block
//    is exact). An output y = sum_k w_k x_k gets the error sum_k w_k e_k, of variance
//    sum_k w_k^2 E[e^2] against E[y^2] = sum_k w_k^2 E[x^2] (independent, zero-mean x), so the
//    NMSE is ~1.4e-5 whatever the weights. A case's estimate scatters: its outputs share the
//    column's few hundred rounding errors and its 33 .. 603 outputs' sums of squares vary by
//    sqrt(2 / N) (25% for 33); measured 1.1e-5 .. 2.0e-5. The bound leaves 2.8x over the
//    expectation, 2x over the worst case measured.
//  * kCpuNmse = 8e-5 against cpu::matmul with exact = false on the same weights, which quantizes
//    the activations itself: Q8_0 / Q8_1 (blocks of 32 with a half scale: the same quants but where
//    the half's rounding moves x / d across a rounding boundary: measured 3e-8 .. 3e-7) and Q8_K
//    for the K-quants and IQ4_XS (blocks of 256 rounded to their own scale, relative error 1.53e-5
//    by simulation, partly correlated with the GPU's: the difference of the two roundings has 2.45e-5
//    by simulation; were they anti-correlated, 4 x 1.5e-5 = 6e-5). Measured for the K-quants
//    1.6e-5 .. 4.2e-5 (the single-column cases scatter most, as above). The bound leaves 3.3x over
//    the expectation, 1.9x over the worst case measured.
// Each test was seen to fail with a deliberately wrong kernel patched into the shader (or the host
// code), then reverted; the comment above each test names it, with the worst NMSE it gave against
// the emulation / F32 / CPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "cpu/ops.h"
#include "quant/quant.h"
#include "runtime/devices.h"
#ifdef YITI_VULKAN
#include "vulkan/context.h"
#include "vulkan/ops.h"
#include "vulkan/ops_int8.h"
#include "vulkan/sequence.h"
#endif

#include "../common/vk_test.h"

using namespace yiti::test;

#ifdef YITI_VULKAN

namespace {

constexpr double kEmulNmse = 1e-9;
constexpr double kF32Nmse = 4e-5;
constexpr double kCpuNmse = 8e-5;

// The quantized activation format (ops_int8.h) read back on the host.
struct HostQ8 {
    std::vector<int8_t> q;      // [n_cols][n_in]
    std::vector<float> d;       // [n_cols][n_in / 32]
    std::vector<int16_t> sums;  // [n_cols][n_in / 32][2]
};

HostQ8 parse_q8(const std::vector<uint32_t>& words, int64_t n_in, int64_t n_cols) {
    HostQ8 h;
    const int64_t nb = n_in / 32, col_words = nb * 10;
    EXPECT_EQ(words.size(), (size_t)(col_words * n_cols));
    for (int64_t c = 0; c < n_cols; ++c) {
        const uint32_t* col = &words[c * col_words];
        for (int64_t e = 0; e < n_in; ++e) h.q.push_back((int8_t)(col[e / 4] >> (8 * (e % 4))));
        for (int64_t b = 0; b < nb; ++b) {
            float d;
            memcpy(&d, &col[8 * nb + 2 * b], 4);
            h.d.push_back(d);
            const uint32_t s = col[8 * nb + 2 * b + 1];
            h.sums.push_back((int16_t)(s & 0xFFFF));
            h.sums.push_back((int16_t)(s >> 16));
        }
    }
    return h;
}

// The activation's values q * d.
std::vector<float> dequantize_q8(const HostQ8& h, int64_t n_in, int64_t n_cols) {
    std::vector<float> x((size_t)(n_in * n_cols));
    for (size_t e = 0; e < x.size(); ++e) x[e] = (float)h.q[e] * h.d[e / 32];
    return x;
}

// The worst NMSEs of several cases (a NaN stays), and whether a packed kernel differed.
struct Worst {
    double emul = 0, f32 = 0, cpu = 0;
    bool packed_differs = false;
    void add(const Worst& o) {
        auto worse = [](double& a, double b) {
            if (!(b <= a)) a = b;
        };
        worse(emul, o.emul);
        worse(f32, o.f32);
        worse(cpu, o.cpu);
        packed_differs |= o.packed_differs;
    }
};

yiti::ThreadPool& pool() {
    static yiti::ThreadPool p(2);
    return p;
}

class VulkanInt8 : public VulkanSuite<VulkanInt8> {
protected:
    // y = W x through quantize_q8 + mul_mat_q8 for each column count of `cols`, all in one
    // sequence with the F32 mul_mat of the same columns (and the packed kernel where the device has
    // the feature), against the three references of the file comment. Returns the worst NMSEs.
    static Worst check(vk::Context& ctx, DType t, int64_t n_in, int64_t n_out,
                       const std::vector<int64_t>& cols, uint64_t seed,
                       const std::vector<int64_t>& packed_cols) {
        const HostWeight hw = make_weight(t, n_in, n_out, seed);
        const vk::Matrix w = vk::upload_matrix(ctx, hw.tensor);
        Rng rng(seed + 7);
        struct Case {
            int64_t nc;
            bool packed;
            std::vector<float> x;
            vk::Buffer xb, xq, y, yp, yf;
            std::vector<uint32_t> xq_host;
            std::vector<float> got, got_packed, got_f32;
        };
        std::vector<Case> cases(cols.size());
        vk::Sequence seq(ctx);
        for (size_t i = 0; i < cols.size(); ++i) {
            Case& k = cases[i];
            k.nc = cols[i];
            k.packed = ctx.int8_dot() &&
                       std::find(packed_cols.begin(), packed_cols.end(), k.nc) != packed_cols.end();
            k.x = rng.vec((size_t)(k.nc * n_in));
            k.xb = to_device(ctx, k.x);
            const uint64_t qbytes = vk::quantized_bytes(n_in, k.nc);
            k.xq = ctx.alloc(qbytes, "test xq");
            k.y = ctx.alloc((size_t)(k.nc * n_out) * 4, "test y");
            k.yp = ctx.alloc((size_t)(k.nc * n_out) * 4, "test y packed");
            k.yf = ctx.alloc((size_t)(k.nc * n_out) * 4, "test y f32");
            vk::quantize_q8(seq, k.xb.view(), n_in, k.nc, k.xq.view());
            vk::mul_mat_q8(seq, w, k.xq.view(), k.nc, k.y.view(), {vk::Int8Dot::Unpacked});
            if (k.packed) vk::mul_mat_q8(seq, w, k.xq.view(), k.nc, k.yp.view(), {vk::Int8Dot::Packed});
            vk::mul_mat(seq, w, k.xb.view(), k.nc, k.yf.view(), {vk::MulMatPath::Tiled});
            k.xq_host.resize(qbytes / 4);
            k.got.resize((size_t)(k.nc * n_out));
            k.got_packed.resize(k.got.size());
            k.got_f32.resize(k.got.size());
            seq.download(k.xq.view(), k.xq_host.data(), qbytes);
            seq.download(k.y.view(), k.got.data(), k.got.size() * 4);
            if (k.packed) seq.download(k.yp.view(), k.got_packed.data(), k.got.size() * 4);
            seq.download(k.yf.view(), k.got_f32.data(), k.got.size() * 4);
        }
        seq.run();
        Worst worst;
        for (Case& k : cases) {
            const std::string what = std::string(yiti::dtype_name(t)) + " " + std::to_string(n_out) + "x" +
                                     std::to_string(n_in) + " cols " + std::to_string(k.nc);
            const HostQ8 hq = parse_q8(k.xq_host, n_in, k.nc);
            Worst e;
            e.emul = nmse(k.got, ref_mul_mat(hw, n_in, n_out, dequantize_q8(hq, n_in, k.nc), k.nc));
            e.f32 = nmse(k.got, to_double(k.got_f32));
            std::vector<float> ycpu(k.got.size());
            yiti::cpu::matmul(pool(), hw.tensor, k.x.data(), k.nc, ycpu.data(), false);
            e.cpu = nmse(k.got, to_double(ycpu));
            EXPECT_LE(e.emul, kEmulNmse) << what << ": against the emulation";
            EXPECT_LE(e.f32, kF32Nmse) << what << ": against the F32 product";
            EXPECT_LE(e.cpu, kCpuNmse) << what << ": against the CPU's fast mode";
            if (k.packed) {
                e.packed_differs = memcmp(k.got.data(), k.got_packed.data(), k.got.size() * 4) != 0;
                EXPECT_FALSE(e.packed_differs)
                    << what << ": the packed dot product's kernel differs from the unpacked one's";
            }
            worst.add(e);
        }
        return worst;
    }

    static void check_type(DType t) {
        ASSERT_TRUE(vk::mul_mat_q8_supported(t));
        Worst worst;
        // 67 and 33 rows: the last workgroup (4 rows) not full. K = 256: 8 blocks per row, fewer
        // than the threads of a workgroup; K = 4096: 128, several per thread. The packed kernel
        // (where the device has the feature) for 3 columns: on lavapipe every pipeline costs ~0.5 s
        // of compilation with a cold shader cache.
        worst.add(check(*ctx_, t, 256, 67, {1, 3, 8, 9}, 1, {3}));
        worst.add(check(*ctx_, t, 4096, 33, {1, 9}, 2, {}));
        printf(
            "[ nmse     ] mul_mat_q8 %s: emulation %.3g (bound %.0e), F32 %.3g (bound %.0e), CPU fast %.3g "
            "(bound %.0e)%s\n",
            yiti::dtype_name(t), worst.emul, kEmulNmse, worst.f32, kF32Nmse, worst.cpu, kCpuNmse,
            !ctx_->int8_dot()      ? ""
            : worst.packed_differs ? "; packed != unpacked"
                                   : "; packed == unpacked");
    }
};

}  // namespace

// The format of ops_int8.h: scales amax / 127, quants within half a step of x / d (the division
// may be 2.5 ulp off on a device: a tie may go either way), the sums those of the quants, a block of
// zeros all zeros; 5 columns of 96 with 3 blocks of zeros, one of them in the last column.
// Fails: rounding toward zero (int(x / d)): 198 failures; the two sums swapped: 22 of the 24 sums of
// the nonzero blocks.
TEST_F(VulkanInt8, QuantizeFormat) {
    const int64_t n_in = 96, n_cols = 5;
    Rng rng(11);
    std::vector<float> x = rng.vec((size_t)(n_in * n_cols));
    for (int64_t b : {1, 6, 14})
        for (int64_t j = 0; j < 32; ++j) x[b * 32 + j] = 0.0f;
    for (int64_t j = 0; j < 32; ++j) x[3 * 32 + j] *= 1e-3f;  // a small block: the scale follows it
    EXPECT_EQ(vk::quantized_bytes(n_in, n_cols), (uint64_t)(n_cols * 3 * 40));
    vk::Buffer xb = to_device(*ctx_, x);
    vk::Buffer xq = ctx_->alloc(vk::quantized_bytes(n_in, n_cols), "test xq");
    std::vector<uint32_t> words(vk::quantized_bytes(n_in, n_cols) / 4);
    vk::Sequence seq(*ctx_);
    vk::quantize_q8(seq, xb.view(), n_in, n_cols, xq.view());
    seq.download(xq.view(), words.data(), words.size() * 4);
    seq.run();
    const HostQ8 h = parse_q8(words, n_in, n_cols);
    for (int64_t b = 0; b < n_in * n_cols / 32; ++b) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
        const float d = h.d[b];
        EXPECT_NEAR(d, amax / 127.0f, amax / 127.0f * 1e-6f) << "block " << b;
        int s[2] = {0, 0};
        for (int j = 0; j < 32; ++j) {
            const int q = h.q[b * 32 + j];
            s[j / 16] += q;
            EXPECT_LE(std::abs(q), 127);
            if (d == 0) {
                EXPECT_EQ(q, 0) << "block " << b;
            } else {
                EXPECT_LE(std::fabs(x[b * 32 + j] / d - q), 0.5 + 1e-4) << "block " << b << " element " << j;
            }
        }
        EXPECT_EQ(h.sums[2 * b], s[0]) << "block " << b;
        EXPECT_EQ(h.sums[2 * b + 1], s[1]) << "block " << b;
    }
}

// Fails: the activation's quants read as if its blocks were 10 words apart (the scale and sums
// interleaved): 2.2 / 2.2 / 2.2.
TEST_F(VulkanInt8, MulMatQ8_0) {
    check_type(DType::Q8_0);
}
// Fails: the offset 7 instead of 8: 0.053 / 0.053 / 0.053. And the packed kernel with OpSUDot
// (signed x unsigned) instead of OpSDot: bit-for-bit check against the unpacked one (3 columns).
TEST_F(VulkanInt8, MulMatQ4_0) {
    check_type(DType::Q4_0);
}
// Fails: the block sums dropped (no min term): 3.75 / 3.75 / 3.75.
TEST_F(VulkanInt8, MulMatQ4_1) {
    check_type(DType::Q4_1);
}
// Fails: the fifth bit of the second half's elements dropped: 0.93 / 0.93 / 0.93.
TEST_F(VulkanInt8, MulMatQ5_0) {
    check_type(DType::Q5_0);
}
// Fails: the first half's sum used for both halves' mins: 3.0 / 3.0 / 3.0.
TEST_F(VulkanInt8, MulMatQ5_1) {
    check_type(DType::Q5_1);
}
// Fails: the table's last entry 112 instead of 113: 2.4e-5 / 3.8e-5 / 2.4e-5 -- the emulation's
// bound only (the F32 one just passes).
TEST_F(VulkanInt8, MulMatIQ4_NL) {
    check_type(DType::IQ4_NL);
}
// Fails: the halves' mins swapped: 0.13 / 0.13 / 0.13.
TEST_F(VulkanInt8, MulMatQ2_K) {
    check_type(DType::Q2_K);
}
// Fails: the scales offset by 31 instead of 32: 2.0e-3 / 2.0e-3 / 2.1e-3.
TEST_F(VulkanInt8, MulMatQ3_K) {
    check_type(DType::Q3_K);
}
// Fails: the sub-block's scale and min taken from sub-block c + 1 (off by one): 0.030 / 0.030 / 0.030.
TEST_F(VulkanInt8, MulMatQ4_K) {
    check_type(DType::Q4_K);
}
// Fails: the fifth bit from bit c + 1 of qh (the next sub-block's): 1.5 / 1.5 / 1.5.
TEST_F(VulkanInt8, MulMatQ5_K) {
    check_type(DType::Q5_K);
}
// Fails: the halves' scales swapped (the sub-block of 16 off by one): 2.2 / 2.2 / 2.2.
TEST_F(VulkanInt8, MulMatQ6_K) {
    check_type(DType::Q6_K);
}
// Fails: the scale offset by 31 instead of 32: 1.6e-3 / 1.7e-3 / 1.8e-3.
TEST_F(VulkanInt8, MulMatIQ4_XS) {
    check_type(DType::IQ4_XS);
}

TEST_F(VulkanInt8, Unsupported) {
    for (DType t : {DType::F32, DType::F16, DType::BF16}) EXPECT_FALSE(vk::mul_mat_q8_supported(t));
    if (!ctx_->int8_dot()) {
        // Asking for the packed kernel where the feature is off is an error, not a crash.
        const HostWeight hw = make_weight(DType::Q8_0, 32, 4, 5);
        const vk::Matrix w = vk::upload_matrix(*ctx_, hw.tensor);
        vk::Buffer xq = ctx_->alloc(vk::quantized_bytes(32, 1), "xq"), y = ctx_->alloc(16, "y");
        vk::Sequence seq(*ctx_);
        EXPECT_THROW(vk::mul_mat_q8(seq, w, xq.view(), 1, y.view(), {vk::Int8Dot::Packed}), yiti::Error);
    }
}

// A storage range of 4 KiB and blocks of 64 KiB: weights in pieces of a few rows (Q4_K: 14 rows
// of 288 bytes; Q5_0: 9 rows of 418 bytes, an odd number of 16-bit words per block), activation
// columns in groups per binding (Q4_K, K = 512: quantize_q8 one column of 2 KiB per dispatch,
// mul_mat_q8 6 columns of 640 bytes; Q5_0, K = 608: 5 columns of 760 bytes, so that groups and
// quantize_q8's single columns start off the binding alignment) and y bound per piece and group.
// Fails: a piece's first row ignored in y's offset (row0): 1.2 / 1.2 / 1.2.
TEST_F(VulkanInt8, SplitBindings) {
    auto small = limited_context(index_, 4096, 65536);
    ASSERT_EQ(small->limits().max_storage_range, 4096u);
    Worst worst;
    worst.add(check(*small, DType::Q4_K, 512, 67, {9}, 21, {}));
    worst.add(check(*small, DType::Q5_0, 608, 67, {9}, 22, {}));
    printf("[ nmse     ] mul_mat_q8 split: emulation %.3g, F32 %.3g, CPU fast %.3g\n", worst.emul, worst.f32,
           worst.cpu);
}

// mul_mat_q8 (with its quantize_q8) against mul_mat for a 4096 x 4096 Q4_K matrix and one column,
// 20 products each in one sequence. Not a test: run with --gtest_also_run_disabled_tests.
TEST_F(VulkanInt8, DISABLED_TimeQ4_K4096) {
    const int64_t n = 4096, reps = 20;
    // Random blocks with small scales (values do not matter for the time).
    const size_t rb = yiti::row_size(DType::Q4_K, n);
    std::vector<uint8_t> bytes(rb * n);
    Rng rng(3);
    for (auto& b : bytes) b = (uint8_t)rng.bits();
    for (size_t off = 0; off < bytes.size(); off += 144) {
        const uint16_t d = yiti::fp32_to_fp16(1e-3f), m = yiti::fp32_to_fp16(1e-4f);
        memcpy(&bytes[off], &d, 2);
        memcpy(&bytes[off + 2], &m, 2);
    }
    const int64_t ne[2] = {n, n};
    const yiti::Tensor t = yiti::make_tensor_view("bench.weight", DType::Q4_K, ne, 2, bytes.data());
    const vk::Matrix w = vk::upload_matrix(*ctx_, t);
    vk::Buffer x = to_device(*ctx_, rng.vec(n));
    vk::Buffer xq = ctx_->alloc(vk::quantized_bytes(n, 1), "xq");
    vk::Buffer y = ctx_->alloc(n * 4, "y");
    vk::Sequence seq(*ctx_);
    auto time = [&](auto&& record) {
        record();
        seq.run();  // warm-up: pipelines built
        const auto t0 = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < reps; ++i) record();
        seq.run();
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
               reps;
    };
    const double f32 = time([&] { vk::mul_mat(seq, w, x.view(), 1, y.view()); });
    const double q8 = time([&] {
        vk::quantize_q8(seq, x.view(), n, 1, xq.view());
        vk::mul_mat_q8(seq, w, xq.view(), 1, y.view());
    });
    const double q8_only = time([&] { vk::mul_mat_q8(seq, w, xq.view(), 1, y.view()); });
    const double quant = time([&] { vk::quantize_q8(seq, x.view(), n, 1, xq.view()); });
    printf(
        "[ time     ] %s, Q4_K 4096x4096, 1 column: mul_mat %.2f ms; quantize_q8 + mul_mat_q8 %.2f ms "
        "(mul_mat_q8 %.2f ms, quantize_q8 %.3f ms; %s dot products)\n",
        ctx_->name().c_str(), f32, q8, q8_only, quant, vk::q8_uses_packed_dot(*ctx_) ? "packed" : "unpacked");
    for (vk::Int8Dot dot : {vk::Int8Dot::Unpacked, vk::Int8Dot::Packed}) {
        if (dot == vk::Int8Dot::Packed && !ctx_->int8_dot()) continue;
        const double ms = time([&] { vk::mul_mat_q8(seq, w, xq.view(), 1, y.view(), {dot}); });
        printf("[ time     ] mul_mat_q8 with the %s kernel: %.2f ms\n",
               dot == vk::Int8Dot::Packed ? "packed" : "unpacked", ms);
    }
}

#endif  // YITI_VULKAN
