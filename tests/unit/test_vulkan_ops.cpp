// Op tests of the Vulkan backend: every kernel against the CPU on random data, odd shapes, split
// bindings; the device list; the context's allocator, barriers and counters.
//
// The device: YITI_TEST_VK_DEVICE (e.g. "vulkan1") or the first usable Vulkan device, software
// ones (lavapipe, what CI has) included. Without one the GPU tests skip.
//
// Error bounds (normalized mean squared error, NMSE = sum (gpu - ref)^2 / sum ref^2):
//  * mul_mat, every weight type: kMulMatNmse = 1e-9 against the reference dequantization
//    (quant::dequantize_row_ref) multiplied in double. The GPU forms the same dequantized values
//    (an integer times a half, or a widened half, is exact in F32; the K-quants' and IQ4_XS's
//    d * scale * q - dmin * min and Q4_1/Q5_1's q * d + m with the reference's operations in its
//    order, so with its roundings) and each product exactly (FMA), so it differs only in rounding
//    its F32 sums: every addition adds a relative error of at most u = 2^-24 of a partial sum; with
//    random signs these add up to about u * sqrt(K) relative to the result, NMSE ~ u^2 K = 1.5e-11
//    for K = 4096, the longest rows here. The bound leaves ~60x room for unlucky orders; a wrong
//    dequantization (a scale, a nibble, a sign of one element in 32) or a dropped block gives
//    NMSE >= 1e-4. Checked by hand for the new types: the lowest bit of Q4_K's 6-bit mins cleared
//    gives 4.5e-4, Q3_K's scales offset by 31 instead of 32 2.0e-3, IQ4_XS's scales with their
//    lowest bit cleared 1.1e-3, Q5_0 with the sign of one element in 32 flipped 0.22.
//  * rms_norm: kRmsNormNmse = 1e-12 against cpu::rms_norm. Each output is x * scale * w with scale
//    from an F32 (GPU) or double (CPU) sum of squares: a few u relative per element, NMSE ~ 1e-14.
//    The bound is tight enough that dropping eps = 1e-5 (relative change 1.5e-5 of the scale for
//    these data, NMSE ~ 2e-10) fails it.
//  * silu_mul: kSiluMulNmse = 1e-12 against cpu::silu_mul. Vulkan lets exp(x) be off by
//    (3 + 2|x|) ulp and a division by 2.5 ulp: for these data (|gate| <= 8) that is NMSE <= 2e-14 if
//    every element were at its worst; the bound leaves 50x. Rounding the activation through half
//    precision (an F16 intermediate) gives 1e-7. (A 'fast exp' with log2(e) rounded to 1.4427 gives
//    7e-14: within what a conformant device may do, so no bound can tell it apart.)
//  * add: exact (NMSE 0): an F32 addition is correctly rounded on every Vulkan device.
//  * get_rows, every weight type: exact (bit for bit) against cpu::get_rows: both give the
//    reference dequantization's floats. Leaving a piece's first row out of the row index (split
//    weights) or clearing the lowest bit of Q4_K's mins fails it.
//  * rope: kRopeNmse = 1e-11 against cpu::rope. The angle is the CPU's float (same F32 operations
//    in the same order, `precise`; the YaRN ramp's quotient corrected to the CPU's rounding); cos
//    and sin are the shader's own (exact reduction by k pi/2, Taylor polynomials): a few ulp, NMSE
//    ~1e-15 (measured 7e-16), and 1e-11 also covers a ramp quotient one ulp off on another device
//    (angles below ~200 there). Fails: reducing with a rounded k * pi/2 (what an unfused FMA
//    gives; lavapipe does not fuse) 7e-9 .. 6e-8; theta_scale^j by pow instead of j products
//    1e-8 .. 1e-6; the ramp one pair off 0.2. (Lavapipe's own sin/cos, accurate at any angle,
//    give 7e-16: Vulkan promises them only 2^-11 within [-pi, pi], hence the shader's own.)
//  * softmax: kSoftmaxNmse = 1e-11 against cpu::softmax (double sum). exp may be (3 + 2|x|) ulp
//    off: for these data (x - max in [-16, 0]) at most 35 ulp, NMSE <= 4.4e-12 if every element
//    were at its worst (measured 7e-15). Leaving one element out of the sum gives 4e-11 (n = 1025)
//    and more for shorter rows. (exp2(x * 1.4427), 6e-12, is within what a device may do.)
//  * attention (decode, paged cache): kAttentionNmse = 1e-10 against cpu::attention. The cache
//    values are the same floats (F16 widened exactly); the scores are F32 dot products (u sqrt(K)
//    relative), the weights exp(s - max) with exp's allowance of (3 + 2|x|) ulp (|x| < ~20 here:
//    at most ~2.6e-6 relative, NMSE <= ~7e-12 if every weight were at its worst) and the sums in
//    F32 in another order than the CPU's; measured 3e-14. Fails: the running sums not rescaled by a
//    new chunk maximum 8e-3; the token's own position left out 8e-3; GQA heads interleaved
//    (h % n_head_kv) 0.66; the scores rounded through F16 5.7e-8.
//  * KV store: exact (byte for byte) against cpu::store_kv_row into the CPU cache: F16 is rounded
//    in integer arithmetic as core/fp16.h rounds. Rounding toward zero, or flushing subnormals,
//    fails it.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "cpu/ops.h"
#include "quant/quant.h"
#include "runtime/devices.h"
#ifdef YITI_VULKAN
#include "vulkan/context.h"
#include "vulkan/ops.h"
#include "vulkan/sequence.h"
#endif

#include "../common/vk_test.h"

using namespace yiti::test;

namespace {

constexpr double kMulMatNmse = 1e-9;
constexpr double kRmsNormNmse = 1e-12;
constexpr double kSiluMulNmse = 1e-12;
constexpr double kRopeNmse = 1e-11;
constexpr double kSoftmaxNmse = 1e-11;
constexpr double kAttentionNmse = 1e-10;

// Runs a shell command; returns the exit code and stdout.
std::pair<int, std::string> sh(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return {-1, ""};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = pclose(p);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace

// ------------------------------------------------------------------ the device list (no GPU needed)

TEST(VulkanDevices, CpuFirstAndUnknownIdsNamed) {
    const auto& devs = yiti::runtime::list_devices();
    ASSERT_FALSE(devs.empty());
    EXPECT_EQ(devs[0].id, "cpu");
    EXPECT_EQ(devs[0].device.kind, yiti::DeviceKind::CPU);
    EXPECT_GT(devs[0].memory_bytes, 0u);
    for (size_t i = 1; i < devs.size(); ++i) {
        EXPECT_EQ(devs[i].id, "vulkan" + std::to_string(i - 1));
        EXPECT_EQ(devs[i].device.kind, yiti::DeviceKind::Vulkan);
        EXPECT_EQ(devs[i].device.index, (int)i - 1);
        EXPECT_EQ(devs[i].software, devs[i].type == "cpu");
    }
    EXPECT_EQ(&yiti::runtime::find_device("cpu"), &devs[0]);
    try {
        yiti::runtime::find_device("vulkan99");
        FAIL() << "no error for an unknown device";
    } catch (const yiti::Error& e) {
        EXPECT_NE(std::string(e.what()).find("'vulkan99'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("cpu"), std::string::npos) << e.what();
    }
}

// The yiti binary: YITI_BIN (set by ctest), else beside the test binary's folder.
std::string yiti_bin() {
    if (const char* b = getenv("YITI_BIN")) return b;
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return "";
    const auto guess = exe.parent_path().parent_path() / "yiti";
    return std::filesystem::exists(guess) ? guess.string() : "";
}

// A machine without a Vulkan loader: the binary runs and lists the CPU alone.
TEST(VulkanDevices, NoLoaderMeansOnlyTheCpu) {
    const std::string bin = yiti_bin();
    if (bin.empty()) GTEST_SKIP() << "YITI_BIN not set and no yiti binary beside the tests";
    auto [rc, out] =
        sh(std::string("YITI_VK_LOADER=/nonexistent/libvulkan.so.1 ") + bin + " devices --json 2>/dev/null");
    ASSERT_EQ(rc, 0);
    auto j = nlohmann::json::parse(out);
    ASSERT_EQ(j.size(), 1u) << out;
    EXPECT_EQ(j[0]["id"], "cpu");
    auto [rc2, text] = sh(std::string("YITI_VK_LOADER=/nonexistent/libvulkan.so.1 ") + bin + " devices 2>&1");
    EXPECT_EQ(rc2, 0);
#ifdef YITI_VULKAN
    EXPECT_NE(text.find("no Vulkan devices: cannot open the Vulkan loader"), std::string::npos) << text;
#else
    EXPECT_NE(text.find("no Vulkan devices: this build of yiti has no Vulkan backend"), std::string::npos)
        << text;
#endif
    auto [rc4, help] = sh(bin + " devices --help");
    EXPECT_EQ(rc4, 0);
    EXPECT_NE(help.find("--json"), std::string::npos) << help;
#ifdef YITI_VULKAN
    auto [rc3, bad] = sh("YITI_VK_MAX_STORAGE_RANGE=12Q " + bin + " devices 2>&1");
    EXPECT_EQ(rc3, 1);
    EXPECT_NE(bad.find("YITI_VK_MAX_STORAGE_RANGE='12Q'"), std::string::npos) << bad;
#endif
}

#ifdef YITI_VULKAN

namespace {

const std::vector<int64_t> k_cols = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 33};

const char* path_name(vk::MulMatPath p) {
    return p == vk::MulMatPath::Vector ? "vector" : p == vk::MulMatPath::Tiled ? "tiled" : "auto";
}

class VulkanOps : public VulkanSuite<VulkanOps> {
protected:
    // Checks y = W x for every column count of k_cols and both kernels, all recorded into one
    // sequence per kernel (one submit); returns the worst NMSE.
    static double check_mul_mat(vk::Context& ctx, DType t, int64_t n_in, int64_t n_out, vk::MulMatPath path,
                                uint64_t seed, int* n_dispatches = nullptr) {
        HostWeight hw = make_weight(t, n_in, n_out, seed);
        vk::Matrix w = vk::upload_matrix(ctx, hw.tensor);
        Rng rng(seed + 7);
        std::vector<std::vector<float>> xs;
        std::vector<vk::Buffer> xb, yb;
        std::vector<std::vector<float>> got;
        vk::Sequence seq(ctx);
        for (int64_t nc : k_cols) {
            xs.push_back(rng.vec((size_t)(nc * n_in)));
            xb.push_back(to_device(ctx, xs.back()));
            yb.push_back(ctx.alloc((size_t)(nc * n_out) * 4, "test y"));
        }
        got.resize(k_cols.size());
        for (size_t i = 0; i < k_cols.size(); ++i) {
            vk::mul_mat(seq, w, xb[i].view(), k_cols[i], yb[i].view(), {path});
            got[i].resize((size_t)(k_cols[i] * n_out));
            seq.download(yb[i].view(), got[i].data(), got[i].size() * 4);
        }
        if (n_dispatches) *n_dispatches = (int)seq.n_dispatches();
        const uint64_t submits0 = ctx.stats().submits;
        seq.run();
        EXPECT_EQ(ctx.stats().submits, submits0 + 1);
        double worst = 0;
        for (size_t i = 0; i < k_cols.size(); ++i) {
            const double e = nmse(got[i], ref_mul_mat(hw, n_in, n_out, xs[i], k_cols[i]));
            EXPECT_LE(e, kMulMatNmse) << yiti::dtype_name(t) << " " << n_out << "x" << n_in << " cols "
                                      << k_cols[i] << " " << path_name(path);
            worst = std::max(worst, e);
        }
        return worst;
    }

    static void mul_mat_all(DType t) {
        // Rows not a multiple of the vector kernel's 2 or the tiled kernel's 64; float rows of odd
        // length (the tiled kernel's K tail); one long row (K = 4096) per type.
        const bool is_float = t == DType::F32 || t == DType::F16 || t == DType::BF16;
        const int64_t n_in = is_float ? 97 : 256;
        double worst = 0;
        for (auto path : {vk::MulMatPath::Vector, vk::MulMatPath::Tiled}) {
            worst = std::max(worst, check_mul_mat(*ctx_, t, n_in, 67, path, 1));
            worst = std::max(worst, check_mul_mat(*ctx_, t, 4096, 33, path, 2));
        }
        if (is_float) worst = std::max(worst, check_mul_mat(*ctx_, t, 1, 5, vk::MulMatPath::Auto, 3));
        printf("[ nmse     ] mul_mat %s: worst %.3g (bound %.0e)\n", yiti::dtype_name(t), worst, kMulMatNmse);
    }
};

}  // namespace

TEST_F(VulkanOps, MulMatF32) {
    mul_mat_all(DType::F32);
}
TEST_F(VulkanOps, MulMatF16) {
    mul_mat_all(DType::F16);
}
TEST_F(VulkanOps, MulMatQ8_0) {
    mul_mat_all(DType::Q8_0);
}
TEST_F(VulkanOps, MulMatQ4_0) {
    mul_mat_all(DType::Q4_0);
}
TEST_F(VulkanOps, MulMatBF16) {
    mul_mat_all(DType::BF16);
}
TEST_F(VulkanOps, MulMatQ4_1) {
    mul_mat_all(DType::Q4_1);
}
TEST_F(VulkanOps, MulMatQ5_0) {
    mul_mat_all(DType::Q5_0);
}
TEST_F(VulkanOps, MulMatQ5_1) {
    mul_mat_all(DType::Q5_1);
}
TEST_F(VulkanOps, MulMatIQ4_NL) {
    mul_mat_all(DType::IQ4_NL);
}
TEST_F(VulkanOps, MulMatQ2_K) {
    mul_mat_all(DType::Q2_K);
}
TEST_F(VulkanOps, MulMatQ3_K) {
    mul_mat_all(DType::Q3_K);
}
TEST_F(VulkanOps, MulMatQ4_K) {
    mul_mat_all(DType::Q4_K);
}
TEST_F(VulkanOps, MulMatQ5_K) {
    mul_mat_all(DType::Q5_K);
}
TEST_F(VulkanOps, MulMatQ6_K) {
    mul_mat_all(DType::Q6_K);
}
TEST_F(VulkanOps, MulMatIQ4_XS) {
    mul_mat_all(DType::IQ4_XS);
}

// A storage range of 4 KiB and blocks of 64 KiB: every weight splits into pieces of rows, the
// columns into groups per binding, and bindings start at unaligned offsets (shifted).
TEST_F(VulkanOps, MulMatSplitBindings) {
    auto small = limited_context(index_, 4096, 65536);
    ASSERT_EQ(small->limits().max_storage_range, 4096u);
    double worst = 0;
    // Besides the first types, a legacy type and two K-quants whose blocks are an odd number of
    // 16-bit words (22, 110 and 210 bytes), so that half their rows start off a 4-byte boundary.
    // (Every further type costs 1-2 s of pipeline compilation on lavapipe with a cold shader cache.)
    for (DType t :
         {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q3_K, DType::Q6_K}) {
        const bool is_float = t == DType::F32 || t == DType::F16;
        const int64_t n_in = is_float ? 97 : 256, n_out = 67;
        {
            HostWeight hw = make_weight(t, n_in, n_out, 5);
            vk::Matrix w = vk::upload_matrix(*small, hw.tensor);
            EXPECT_GE(w.pieces.size(), 2u) << yiti::dtype_name(t);
            for (const auto& p : w.pieces) EXPECT_LE(p.buf.size(), 4096u);
        }
        for (auto path : {vk::MulMatPath::Vector, vk::MulMatPath::Tiled}) {
            int n_dispatches = 0;
            worst = std::max(worst, check_mul_mat(*small, t, n_in, n_out, path, 11, &n_dispatches));
            // 33 columns take more than one group per piece.
            EXPECT_GT(n_dispatches, (int)k_cols.size() * 2) << yiti::dtype_name(t) << " " << path_name(path);
        }
    }
    printf("[ nmse     ] mul_mat with split bindings: worst %.3g (bound %.0e)\n", worst, kMulMatNmse);
    EXPECT_EQ(small->device_bytes_in_use(), 0u);
}

// Rows further apart than their size in host memory (a view into a larger tensor) upload packed.
TEST_F(VulkanOps, UploadStridedRows) {
    const int64_t n_in = 256, n_out = 10;
    HostWeight hw = make_weight(DType::Q8_0, n_in, n_out, 17);
    const size_t rb = yiti::row_size(DType::Q8_0, n_in), stride = rb + 68;
    std::vector<uint8_t> padded(stride * n_out, 0xAB);
    for (int64_t r = 0; r < n_out; ++r) memcpy(&padded[r * stride], &hw.bytes[r * rb], rb);
    yiti::Tensor t = hw.tensor;
    t.data = padded.data();
    t.nb[1] = stride;
    t.nb[2] = t.nb[3] = stride * n_out;
    vk::Matrix w = vk::upload_matrix(*ctx_, t);
    Rng rng(4);
    const std::vector<float> x = rng.vec(n_in);
    vk::Buffer bx = to_device(*ctx_, x), by = ctx_->alloc(n_out * 4, "y");
    vk::Sequence seq(*ctx_);
    vk::mul_mat(seq, w, bx.view(), 1, by.view());
    seq.run();
    EXPECT_LE(nmse(from_device(*ctx_, by, n_out), ref_mul_mat(hw, n_in, n_out, x, 1)), kMulMatNmse);
}

TEST_F(VulkanOps, RmsNorm) {
    const float eps = 1e-5f;
    double worst = 0;
    for (int64_t n : {1, 7, 33, 256, 4099}) {
        for (int64_t rows : {1, 3, 67}) {
            Rng rng((uint64_t)(n * 131 + rows));
            const std::vector<float> x = rng.vec((size_t)(n * rows)), w = rng.vec((size_t)n);
            std::vector<float> ref((size_t)(n * rows));
            for (int64_t r = 0; r < rows; ++r) yiti::cpu::rms_norm(&x[r * n], w.data(), n, eps, &ref[r * n]);
            vk::Buffer bx = to_device(*ctx_, x), bw = to_device(*ctx_, w);
            vk::Buffer bo = ctx_->alloc(x.size() * 4, "out");
            vk::Sequence seq(*ctx_);
            vk::rms_norm(seq, bx.view(), bw.view(), n, rows, eps, bo.view());
            vk::rms_norm(seq, bx.view(), bw.view(), n, rows, eps, bx.view());  // in place, after the first
            std::vector<float> got(x.size()), got_inplace(x.size());
            seq.download(bo.view(), got.data(), got.size() * 4);
            seq.download(bx.view(), got_inplace.data(), got.size() * 4);
            seq.run();
            const double e = nmse(got, to_double(ref));
            EXPECT_LE(e, kRmsNormNmse) << "n " << n << " rows " << rows;
            EXPECT_EQ(got, got_inplace) << "n " << n << " rows " << rows;
            worst = std::max(worst, e);
        }
    }
    // Split: a 4 KiB range holds 3 rows of 300 floats.
    auto small = limited_context(index_, 4096);
    {
        const int64_t n = 300, rows = 10;
        Rng rng(99);
        const std::vector<float> x = rng.vec((size_t)(n * rows)), w = rng.vec((size_t)n);
        std::vector<float> ref((size_t)(n * rows));
        for (int64_t r = 0; r < rows; ++r) yiti::cpu::rms_norm(&x[r * n], w.data(), n, eps, &ref[r * n]);
        vk::Buffer bx = to_device(*small, x), bw = to_device(*small, w);
        vk::Sequence seq(*small);
        vk::rms_norm(seq, bx.view(), bw.view(), n, rows, eps, bx.view());
        EXPECT_EQ(seq.n_dispatches(), 4u);
        seq.run();
        const double e = nmse(from_device(*small, bx, x.size()), to_double(ref));
        EXPECT_LE(e, kRmsNormNmse);
        worst = std::max(worst, e);
    }
    printf("[ nmse     ] rms_norm: worst %.3g (bound %.0e)\n", worst, kRmsNormNmse);
}

TEST_F(VulkanOps, SiluMul) {
    double worst = 0;
    for (int64_t n : {1, 255, 256, 257, 100003}) {
        Rng rng((uint64_t)n);
        std::vector<float> g = rng.vec((size_t)n), u = rng.vec((size_t)n);
        for (auto& v : g) v *= 8;  // silu's curve, both tails included
        std::vector<float> ref = g;
        yiti::cpu::silu_mul(ref.data(), u.data(), n);
        vk::Buffer bg = to_device(*ctx_, g), bu = to_device(*ctx_, u), bo = ctx_->alloc(n * 4, "out");
        vk::Sequence seq(*ctx_);
        vk::silu_mul(seq, bg.view(), bu.view(), n, bo.view());
        vk::silu_mul(seq, bg.view(), bu.view(), n, bg.view());  // in place
        std::vector<float> got(n), got_inplace(n);
        seq.download(bo.view(), got.data(), n * 4);
        seq.download(bg.view(), got_inplace.data(), n * 4);
        seq.run();
        const double e = nmse(got, to_double(ref));
        EXPECT_LE(e, kSiluMulNmse) << "n " << n;
        EXPECT_EQ(got, got_inplace) << "n " << n;
        worst = std::max(worst, e);
    }
    // Split: 1000 floats through a 1 KiB range.
    auto small = limited_context(index_, 1024);
    {
        Rng rng(5);
        const std::vector<float> g = rng.vec(1000), u = rng.vec(1000);
        std::vector<float> ref = g;
        yiti::cpu::silu_mul(ref.data(), u.data(), 1000);
        vk::Buffer bg = to_device(*small, g), bu = to_device(*small, u);
        vk::Sequence seq(*small);
        vk::silu_mul(seq, bg.view(), bu.view(), 1000, bg.view());
        EXPECT_GE(seq.n_dispatches(), 4u);
        seq.run();
        const double e = nmse(from_device(*small, bg, 1000), to_double(ref));
        EXPECT_LE(e, kSiluMulNmse);
        worst = std::max(worst, e);
    }
    printf("[ nmse     ] silu_mul: worst %.3g (bound %.0e)\n", worst, kSiluMulNmse);
}

TEST_F(VulkanOps, Add) {
    for (int64_t n : {1, 255, 257, 100003}) {
        Rng rng((uint64_t)n + 3);
        const std::vector<float> a = rng.vec((size_t)n), b = rng.vec((size_t)n);
        std::vector<float> ref(n);
        for (int64_t i = 0; i < n; ++i) ref[i] = a[i] + b[i];
        vk::Buffer ba = to_device(*ctx_, a), bb = to_device(*ctx_, b), bo = ctx_->alloc(n * 4, "out");
        vk::Sequence seq(*ctx_);
        vk::add(seq, ba.view(), bb.view(), n, bo.view());
        vk::add(seq, ba.view(), bb.view(), n, ba.view());  // in place
        std::vector<float> got(n), got_inplace(n);
        seq.download(bo.view(), got.data(), n * 4);
        seq.download(ba.view(), got_inplace.data(), n * 4);
        seq.run();
        EXPECT_EQ(got, ref) << "n " << n;
        EXPECT_EQ(got_inplace, ref) << "n " << n;
    }
    // A bias row of 33 added to 7 rows, through a 256-byte range (chunks of at most 60 floats,
    // starting at phases other than 0).
    for (uint64_t range : {0ull, 256ull}) {
        auto c = limited_context(index_, range);
        Rng rng(42);
        const std::vector<float> a = rng.vec(33 * 7), bias = rng.vec(33);
        std::vector<float> ref(a.size());
        for (size_t i = 0; i < a.size(); ++i) ref[i] = a[i] + bias[i % 33];
        vk::Buffer ba = to_device(*c, a), bb = to_device(*c, bias);
        vk::Sequence seq(*c);
        vk::add(seq, ba.view(), bb.view(), (int64_t)a.size(), ba.view(), 33);
        EXPECT_EQ(seq.n_dispatches(), range ? 4u : 1u);
        seq.run();
        EXPECT_EQ(from_device(*c, ba, a.size()), ref) << "range " << range;
    }
}

// Independent products share no barrier; a dependent op gets one; the whole recording is one
// submit and one host sync, its results those of the ops one by one.
TEST_F(VulkanOps, BarriersOnlyBetweenDependentDispatches) {
    const int64_t n = 256, n_out = 64;
    HostWeight hq = make_weight(DType::Q8_0, n, n_out, 1), hk = make_weight(DType::Q4_0, n, n_out, 2);
    vk::Matrix wq = vk::upload_matrix(*ctx_, hq.tensor), wk = vk::upload_matrix(*ctx_, hk.tensor);
    Rng rng(3);
    const std::vector<float> x = rng.vec(n), nw = rng.vec(n);
    vk::Buffer bx = to_device(*ctx_, x), bnw = to_device(*ctx_, nw);
    vk::Buffer bxn = ctx_->alloc(n * 4, "xn"), bq = ctx_->alloc(n_out * 4, "q"),
               bk = ctx_->alloc(n_out * 4, "k");
    vk::Buffer bs = ctx_->alloc(n_out * 4, "sum");

    const vk::Stats s0 = ctx_->stats();
    vk::Sequence seq(*ctx_);
    vk::rms_norm(seq, bx.view(), bnw.view(), n, 1, 1e-6f, bxn.view());  // 1 dispatch
    vk::mul_mat(seq, wq, bxn.view(), 1, bq.view());                     // reads xn: barrier
    vk::mul_mat(seq, wk, bxn.view(), 1, bk.view());                     // independent of q: none
    vk::add(seq, bq.view(), bk.view(), n_out, bs.view());               // reads q and k: barrier
    vk::silu_mul(seq, bs.view(), bq.view(), n_out, bs.view());          // reads sum: barrier
    std::vector<float> got(n_out);
    seq.download(bs.view(), got.data(), n_out * 4);  // reads sum: barrier
    seq.run();
    const vk::Stats s1 = ctx_->stats();
    EXPECT_EQ(s1.dispatches - s0.dispatches, 5u);
    EXPECT_EQ(s1.barriers - s0.barriers, 4u);
    EXPECT_EQ(s1.submits - s0.submits, 1u);
    EXPECT_EQ(s1.syncs - s0.syncs, 1u);
    EXPECT_EQ(s1.d2h_bytes - s0.d2h_bytes, (uint64_t)n_out * 4);

    // The same on the CPU.
    std::vector<float> xn(n);
    yiti::cpu::rms_norm(x.data(), nw.data(), n, 1e-6f, xn.data());
    const std::vector<double> q = ref_mul_mat(hq, n, n_out, xn, 1), k = ref_mul_mat(hk, n, n_out, xn, 1);
    std::vector<float> sum(n_out), qf(n_out);
    for (int64_t i = 0; i < n_out; ++i) {
        qf[i] = (float)q[i];
        sum[i] = (float)(q[i] + k[i]);
    }
    yiti::cpu::silu_mul(sum.data(), qf.data(), n_out);
    EXPECT_LE(nmse(got, to_double(sum)), kMulMatNmse);
}

TEST_F(VulkanOps, SequenceReusedAndUploadsInOrder) {
    // An upload recorded after a dispatch that reads the same bytes waits for it (write after read).
    const int64_t n = 1000;
    Rng rng(8);
    const std::vector<float> a = rng.vec(n), b = rng.vec(n), c = rng.vec(n);
    vk::Buffer ba = to_device(*ctx_, a), bb = ctx_->alloc(n * 4, "b"), bo1 = ctx_->alloc(n * 4, "o1"),
               bo2 = ctx_->alloc(n * 4, "o2");
    vk::Sequence seq(*ctx_);
    for (int round = 0; round < 2; ++round) {
        const uint64_t barriers0 = ctx_->stats().barriers;
        seq.upload(bb.view(), b.data(), n * 4);
        vk::add(seq, ba.view(), bb.view(), n, bo1.view());
        seq.upload(bb.view(), c.data(), n * 4);
        vk::add(seq, ba.view(), bb.view(), n, bo2.view());
        std::vector<float> o1(n), o2(n);
        seq.download(bo1.view(), o1.data(), n * 4);
        seq.download(bo2.view(), o2.data(), n * 4);
        seq.run();
        EXPECT_EQ(ctx_->stats().barriers - barriers0, 4u);
        for (int64_t i = 0; i < n; ++i) {
            ASSERT_EQ(o1[i], a[i] + b[i]) << i;
            ASSERT_EQ(o2[i], a[i] + c[i]) << i;
        }
    }
}

TEST_F(VulkanOps, AllocatorSubAllocatesAndGivesBack) {
    auto c = limited_context(index_, 0, 1 << 20);
    EXPECT_EQ(c->limits().max_alloc, 1u << 20);
    {
        std::vector<vk::Buffer> bufs;
        for (int i = 0; i < 40; ++i) bufs.push_back(c->alloc(100000 + i, "piece"));
        // 40 x ~100 KB in blocks of at most 1 MiB: several blocks, no block over the limit.
        EXPECT_GE(c->device_bytes_allocated(), 4u << 20);
        // Distinct, non-overlapping ranges within a VkBuffer.
        for (size_t i = 0; i < bufs.size(); ++i)
            for (size_t j = i + 1; j < bufs.size(); ++j) {
                const auto a = bufs[i].view(), b = bufs[j].view();
                if (a.buffer == b.buffer) {
                    EXPECT_TRUE(a.offset + a.size <= b.offset || b.offset + b.size <= a.offset);
                }
            }
        for (size_t i = 0; i < bufs.size(); i += 2) bufs[i] = vk::Buffer();
        const uint64_t held = c->device_bytes_allocated();
        for (int i = 0; i < 20; ++i) bufs.push_back(c->alloc(90000, "reuse"));  // fits the holes
        EXPECT_EQ(c->device_bytes_allocated(), held);
    }
    EXPECT_EQ(c->device_bytes_in_use(), 0u);
    EXPECT_LE(c->device_bytes_allocated(), 1u << 20);  // empty blocks given back but one
    try {
        c->alloc((1 << 20) + 1, "blk.0.ffn_up.weight");
        FAIL() << "no error for an allocation over the block size";
    } catch (const yiti::Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("vulkan" + std::to_string(index_)), std::string::npos) << m;
        EXPECT_NE(m.find("blk.0.ffn_up.weight"), std::string::npos) << m;
    }
}

// ------------------------------------------------------------------ get_rows, rope, softmax, KV store

TEST_F(VulkanOps, GetRows) {
    // Every weight type; repeated ids, the first and the last row; compared bit for bit with
    // cpu::get_rows (both give the reference dequantization's floats).
    const std::vector<int32_t> ids = {36, 0, 5, 5, 17, 36, 1};
    const int64_t n = (int64_t)ids.size(), n_rows = 37;
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                    DType::Q5_1, DType::IQ4_NL, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K,
                    DType::Q6_K, DType::IQ4_XS}) {
        const bool is_float = t == DType::F32 || t == DType::F16 || t == DType::BF16;
        const int64_t n_in = is_float ? 97 : 512;
        HostWeight hw = make_weight(t, n_in, n_rows, 11);
        std::vector<float> ref((size_t)(n * n_in));
        yiti::cpu::get_rows(hw.tensor, ids.data(), n, ref.data());
        vk::Matrix w = vk::upload_matrix(*ctx_, hw.tensor);
        vk::Buffer bi = ctx_->alloc(n * 4, "ids"), bo = ctx_->alloc(ref.size() * 4, "out");
        vk::Sequence seq(*ctx_);
        vk::get_rows(seq, w, ids.data(), n, bi.view(), bo.view());
        seq.run();
        EXPECT_EQ(first_diff(from_device(*ctx_, bo, ref.size()), ref), -1) << yiti::dtype_name(t);
    }
    // Split: a 1 KiB range holds 5 rows of 97 halfs (8 pieces) and 2 output rows per dispatch.
    auto small = limited_context(index_, 1024);
    HostWeight hw = make_weight(DType::F16, 97, n_rows, 12);
    std::vector<float> ref((size_t)(n * 97));
    yiti::cpu::get_rows(hw.tensor, ids.data(), n, ref.data());
    vk::Matrix w = vk::upload_matrix(*small, hw.tensor);
    EXPECT_EQ(w.pieces.size(), 8u);
    vk::Buffer bi = small->alloc(n * 4, "ids"), bo = small->alloc(ref.size() * 4, "out");
    vk::Sequence seq(*small);
    vk::get_rows(seq, w, ids.data(), n, bi.view(), bo.view());
    EXPECT_EQ(seq.n_dispatches(), 8u * 4u);
    seq.run();
    EXPECT_EQ(first_diff(from_device(*small, bo, ref.size()), ref), -1);
    // An id out of range: the CPU's error, nothing recorded.
    const int32_t bad[2] = {3, 37};
    vk::Sequence seq2(*small);
    EXPECT_THROW(vk::get_rows(seq2, w, bad, 2, bi.view(), bo.view()), yiti::Error);
    EXPECT_TRUE(seq2.empty());
}

TEST_F(VulkanOps, Rope) {
    // Normal and NEOX, with and without YaRN, full and partial rotation (the values past n_rot
    // untouched); positions from 0 to 100000 (angles far outside [-pi, pi]).
    const std::vector<int32_t> pos = {0, 1, 17, 4097, 100000};
    const int64_t n_tok = (int64_t)pos.size();
    const int n_head = 3;
    double worst = 0;
    for (int style = 0; style < 2; ++style) {
        for (bool yarn : {false, true}) {
            for (int64_t hd : {64, 40}) {
                yiti::cpu::RopeParams rp;
                rp.style = style ? yiti::cpu::RopeStyle::Neox : yiti::cpu::RopeStyle::Normal;
                rp.n_rot = hd == 64 ? 64 : 24;
                rp.freq_base = yarn ? 1e6f : 10000.0f;
                if (yarn) {
                    rp.freq_scale = 0.25f;
                    rp.ext_factor = 1.0f;
                    rp.attn_factor = 0.9f;
                    rp.n_ctx_orig = 4096;
                }
                Rng rng((uint64_t)(hd + style * 7 + yarn * 3));
                const std::vector<float> x = rng.vec((size_t)(n_tok * n_head * hd));
                std::vector<float> ref = x;
                yiti::cpu::rope(rp, ref.data(), n_tok, n_head, hd, pos.data());
                vk::Buffer bx = to_device(*ctx_, x), bp = ctx_->alloc(n_tok * 4, "pos");
                vk::Sequence seq(*ctx_);
                vk::rope(seq, rp, bx.view(), n_tok, n_head, hd, pos.data(), bp.view());
                seq.run();
                const std::vector<float> got = from_device(*ctx_, bx, x.size());
                const double e = nmse(got, to_double(ref));
                EXPECT_LE(e, kRopeNmse) << "style " << style << " yarn " << yarn << " head " << hd;
                worst = std::max(worst, e);
                for (size_t i = 0; i < x.size(); ++i)
                    if ((int64_t)(i % hd) >= rp.n_rot) {
                        ASSERT_EQ(got[i], x[i]) << i;
                    }
            }
        }
    }
    printf("[ nmse     ] rope: worst %.3g (bound %.0e)\n", worst, kRopeNmse);
}

TEST_F(VulkanOps, Softmax) {
    double worst = 0;
    for (int64_t n : {1, 7, 300, 1025}) {
        const int64_t rows = 3;
        Rng rng((uint64_t)n + 21);
        std::vector<float> x = rng.vec((size_t)(n * rows));
        for (auto& v : x) v *= 8;  // exp over [-16, 0]
        std::vector<float> ref = x;
        for (int64_t r = 0; r < rows; ++r) yiti::cpu::softmax(&ref[r * n], n);
        vk::Buffer bx = to_device(*ctx_, x), bo = ctx_->alloc(x.size() * 4, "out");
        vk::Sequence seq(*ctx_);
        vk::softmax(seq, bx.view(), n, rows, bo.view());
        vk::softmax(seq, bx.view(), n, rows, bx.view());  // in place, after the first
        std::vector<float> got(x.size()), got_inplace(x.size());
        seq.download(bo.view(), got.data(), got.size() * 4);
        seq.download(bx.view(), got_inplace.data(), got.size() * 4);
        seq.run();
        const double e = nmse(got, to_double(ref));
        EXPECT_LE(e, kSoftmaxNmse) << "n " << n;
        EXPECT_EQ(got, got_inplace) << "n " << n;
        worst = std::max(worst, e);
    }
    printf("[ nmse     ] softmax: worst %.3g (bound %.0e)\n", worst, kSoftmaxNmse);
}

TEST_F(VulkanOps, KVStore) {
    // Two sequences in 4-slot blocks (their tables interleaved in the pool); a batch of 6 tokens of
    // one and 2 of the other, stored for layers 0 and 2 of 3 (the layers this device holds). Every
    // written row must equal the CPU cache's row byte for byte (F16: rounding, overflow to
    // infinity, subnormals, signed zero).
    for (DType type : {DType::F32, DType::F16}) {
        yiti::kv::KVLayout lay;
        lay.n_layer = 3;
        lay.k_dim = 40;
        lay.v_dim = 24;
        lay.type = type;
        lay.block_size = 4;
        yiti::kv::KVCache cache(lay, 40);
        yiti::kv::SeqKV a, b;
        ASSERT_TRUE(cache.reserve(b, 2));
        ASSERT_TRUE(cache.reserve(a, 3));
        ASSERT_TRUE(cache.reserve(b, 6));
        ASSERT_TRUE(cache.reserve(a, 7));
        struct Tok {
            yiti::kv::SeqKV* s;
            int64_t pos;
        };
        const std::vector<Tok> toks = {{&a, 1}, {&a, 2}, {&a, 3}, {&a, 4},
                                       {&a, 5}, {&a, 6}, {&b, 4}, {&b, 5}};
        const int64_t n_tok = (int64_t)toks.size();
        std::vector<int32_t> slots;
        for (const Tok& t : toks) slots.push_back(vk::kv_slot(*t.s, lay.block_size, t.pos));
        vk::KVStorage st = vk::alloc_kv_storage(*ctx_, lay, cache.pool().n_blocks(), {0, 2});
        vk::Buffer bs = ctx_->alloc(n_tok * 4, "slots");
        std::vector<std::vector<float>> ks, vs;
        std::vector<vk::Buffer> kb, vb;
        vk::Sequence seq(*ctx_);
        for (int il : {0, 2}) {
            Rng rng((uint64_t)il + 5);
            std::vector<float> k = rng.vec((size_t)(n_tok * lay.k_dim)),
                               v = rng.vec((size_t)(n_tok * lay.v_dim));
            const float special[] = {65504.0f,
                                     65519.0f,
                                     65520.0f,
                                     -1e5f,
                                     6.1e-5f,
                                     3e-6f,
                                     -2.9802322e-8f,
                                     2.9802326e-8f,
                                     1e-10f,
                                     -0.0f,
                                     1.0009765625f + 0.00048828125f,
                                     1.00048828125f};
            for (size_t i = 0; i < std::size(special); ++i) k[i * 7] = special[i] * (il ? -1.0f : 1.0f);
            for (size_t t = 0; t < toks.size(); ++t) {
                yiti::cpu::store_kv_row(type, &k[t * lay.k_dim], cache.k_row(il, *toks[t].s, toks[t].pos),
                                        lay.k_dim);
                yiti::cpu::store_kv_row(type, &v[t * lay.v_dim], cache.v_row(il, *toks[t].s, toks[t].pos),
                                        lay.v_dim);
            }
            kb.push_back(to_device(*ctx_, k));
            vb.push_back(to_device(*ctx_, v));
            vk::kv_store(seq, st, il, kb.back().view(), vb.back().view(), n_tok, slots.data(), bs.view());
            ks.push_back(std::move(k));
            vs.push_back(std::move(v));
        }
        seq.run();
        for (int il : {0, 2}) {
            const vk::KVStorage::Layer& l = st.layer(il);
            std::vector<uint8_t> gk(l.k.size()), gv(l.v.size());
            ctx_->download(l.k.view(), gk.data(), gk.size());
            ctx_->download(l.v.view(), gv.data(), gv.size());
            for (size_t t = 0; t < toks.size(); ++t) {
                const size_t s = (size_t)slots[t];
                EXPECT_EQ(memcmp(&gk[s * cache.k_row_bytes()], cache.k_row(il, *toks[t].s, toks[t].pos),
                                 cache.k_row_bytes()),
                          0)
                    << yiti::dtype_name(type) << " layer " << il << " K token " << t;
                EXPECT_EQ(memcmp(&gv[s * cache.v_row_bytes()], cache.v_row(il, *toks[t].s, toks[t].pos),
                                 cache.v_row_bytes()),
                          0)
                    << yiti::dtype_name(type) << " layer " << il << " V token " << t;
            }
        }
        cache.release(a);
        cache.release(b);
    }
}

TEST_F(VulkanOps, Attention) {
    // Decode over the paged cache: three sequences at positions 0 (one cache row), 37 (across
    // blocks) and 150 (three chunks of the shader's 64), plus a sequence with two tokens (causal
    // within the batch); GQA with 3 query heads per KV head, K and V heads of different sizes;
    // F32 and F16 caches; and an MLA-like cache (V the first values of K, one KV head). The cache
    // is written by kv_store (and by cpu::store_kv_row for the CPU).
    struct Case {
        DType type;
        int n_head, n_head_kv;
        int64_t hd_k, hd_v;
        bool v_in_k;
    };
    yiti::ThreadPool pool(2);
    double worst = 0;
    for (const Case& c : {Case{DType::F32, 6, 2, 40, 24, false}, Case{DType::F16, 6, 2, 40, 24, false},
                          Case{DType::F16, 4, 1, 72, 64, true}}) {
        yiti::kv::KVLayout lay;
        lay.n_layer = 2;
        lay.k_dim = c.n_head_kv * c.hd_k;
        lay.v_dim = c.v_in_k ? 0 : c.n_head_kv * c.hd_v;
        lay.type = c.type;
        lay.block_size = 16;
        yiti::kv::KVCache cache(lay, 512);
        const std::vector<int32_t> last = {0, 37, 150, 20};  // the batch's last position per sequence
        const std::vector<int64_t> n_new = {1, 1, 1, 2};
        std::vector<yiti::kv::SeqKV> kvs(last.size());
        for (size_t s = 0; s < kvs.size(); ++s) ASSERT_TRUE(cache.reserve(kvs[s], last[s] + 1));
        const int il = 1;
        vk::KVStorage st = vk::alloc_kv_storage(*ctx_, lay, cache.pool().n_blocks(), {il});
        vk::Sequence seq(*ctx_);
        std::vector<vk::Buffer> keep;
        Rng rng(77);
        for (size_t s = 0; s < kvs.size(); ++s) {
            const int64_t n = last[s] + 1;
            const std::vector<float> k = rng.vec((size_t)(n * lay.k_dim)),
                                     v = rng.vec((size_t)(n * lay.v_dim));
            std::vector<int32_t> slots;
            for (int64_t pos = 0; pos < n; ++pos) {
                yiti::cpu::store_kv_row(c.type, &k[pos * lay.k_dim], cache.k_row(il, kvs[s], pos), lay.k_dim);
                if (lay.v_dim)
                    yiti::cpu::store_kv_row(c.type, &v[pos * lay.v_dim], cache.v_row(il, kvs[s], pos),
                                            lay.v_dim);
                slots.push_back(vk::kv_slot(kvs[s], lay.block_size, pos));
            }
            keep.push_back(to_device(*ctx_, k));
            keep.push_back(lay.v_dim ? to_device(*ctx_, v) : ctx_->alloc(4, "no v"));
            keep.push_back(ctx_->alloc(n * 4, "slots"));
            vk::kv_store(seq, st, il, keep[keep.size() - 3].view(), keep[keep.size() - 2].view(), n,
                         slots.data(), keep.back().view());
        }
        std::vector<yiti::cpu::AttnSeq> seqs;
        int64_t n_tok = 0;
        for (size_t s = 0; s < kvs.size(); ++s) {
            seqs.push_back({&kvs[s], n_tok, n_new[s], (int32_t)(last[s] + 1 - n_new[s])});
            n_tok += n_new[s];
        }
        yiti::cpu::AttnParams ap;
        ap.n_head = c.n_head;
        ap.n_head_kv = c.n_head_kv;
        ap.head_dim_k = c.hd_k;
        ap.head_dim_v = c.hd_v;
        ap.scale = 1.0f / std::sqrt((float)c.hd_k);
        std::vector<float> qv = rng.vec((size_t)(n_tok * c.n_head * c.hd_k));
        for (auto& x : qv) x *= 4;  // peaked and flat rows alike
        std::vector<float> ref((size_t)(n_tok * c.n_head * c.hd_v));
        yiti::cpu::attention(pool, ap, cache, il, seqs, qv.data(), ref.data());
        vk::Buffer bq = to_device(*ctx_, qv), bo = ctx_->alloc(ref.size() * 4, "out");
        vk::Buffer bm = ctx_->alloc(vk::attention_meta_words(seqs, lay.block_size) * 4, "meta");
        vk::attention(seq, ap, st, il, seqs, bq.view(), bo.view(), bm.view());
        std::vector<float> got(ref.size());
        seq.download(bo.view(), got.data(), got.size() * 4);
        seq.run();
        const double e = nmse(got, to_double(ref));
        EXPECT_LE(e, kAttentionNmse) << yiti::dtype_name(c.type) << " v_in_k " << c.v_in_k;
        worst = std::max(worst, e);
        for (auto& s : kvs) cache.release(s);
    }
    printf("[ nmse     ] attention: worst %.3g (bound %.0e)\n", worst, kAttentionNmse);
}

TEST_F(VulkanOps, ErrorsNameTheDevice) {
    try {
        vk::Context::create(99);
        FAIL() << "no error for a missing device";
    } catch (const yiti::Error& e) {
        EXPECT_NE(std::string(e.what()).find("vulkan99"), std::string::npos) << e.what();
    }
    try {
        ctx_->pipeline({"no_such_shader", 1, 0, {}});
        FAIL() << "no error for a missing shader";
    } catch (const yiti::Error& e) {
        EXPECT_NE(std::string(e.what()).find("no_such_shader"), std::string::npos) << e.what();
    }
}

#else  // YITI_VULKAN

TEST(VulkanOps, NotBuilt) {
    GTEST_SKIP() << "this build has no Vulkan backend (configure with libvulkan-dev and glslc)";
}

#endif  // YITI_VULKAN
