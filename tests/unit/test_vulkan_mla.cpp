// Op tests of the Vulkan pieces of DeepSeek's absorbed MLA attention (vulkan/ops_mla.h and
// vk::attention's large heads): random data against the CPU, on the first usable Vulkan device
// (lavapipe in CI; YITI_TEST_VK_DEVICE picks another). Without one the tests skip.
//
// Error bounds (NMSE = sum (gpu - ref)^2 / sum ref^2), each checked once against a deliberately
// wrong kernel:
//  * attention with MLA heads (one KV head of 576 values, V its first 512): kMlaAttentionNmse =
//    1e-10 against cpu::attention. The cache holds the same floats (F16 widened exactly); what
//    differs is F32 rounding. A score is a sum of 576 products of |q| <= 4, |k| <= 1 (term sd
//    1.33): the F32 partial sums (sd up to 32) each round by u = 2^-24 relative, so the two
//    devices' sums differ by ~u * sqrt(sum of partial sums^2) = 6e-8 * 543 = 3.2e-5, times the
//    scale 1/sqrt(192) = 2.3e-6 absolute in the score, i.e. relative in its weight exp(s - max).
//    exp may be (3 + 2|x|) ulp off (|x| < ~15 here: <= 33 ulp = 3.9e-6 relative). The output, a
//    weighted mean of V rows, moves by about the weights' relative error: NMSE <= (6.2e-6)^2 =
//    3.8e-11 if every weight were at its worst (the errors of different weights partly cancel).
//    Measured: 6.5e-14 (F32 cache), 6.8e-14 (F16). Fails (each tried once): the scores leaving
//    out the 64 rope dimensions (i < 512) 0.097 (per sequence 0.06 .. 0.29; the row at position 0
//    passes, its softmax has one weight); V read as the last 512 values of the K row instead of
//    the first 2.0 (VulkanOps.Attention's MLA case fails too); the output dimensions per thread
//    kept at 4 for these heads (the small kernel's shape: dimensions past 256 never written, the
//    output prefilled with NaN) NaN.
//  * copy_strided: exact (bit for bit, the whole destination including what it must not touch).
//    Fails: the source's strides swapped (i0 * s1 + i1 * s0): 4 of the 6 cases (not the
//    broadcast and the contiguous copy, where it makes no difference); the last element of each
//    row left out: all 6. (Decomposing the thread index i0-fastest instead is no bug: every
//    (i0, i1) is still copied once.)
//  * mul_mat_batched: kMulMatNmse = 1e-9 against the reference dequantization
//    (quant::dequantize_row_ref) multiplied in double, as mul_mat in test_vulkan_ops.cpp: the GPU
//    forms the same dequantized values and exact products (FMA) and differs only in rounding its
//    F32 sums (rows of at most 256 here: NMSE ~ u^2 K ~ 1e-12; measured <= 1e-14). y is
//    prefilled with NaN, so an output never written fails. Fails: mat m reading the rows of mat
//    m + 1: NaN everywhere (the last mat's rows lie past the matrix: never written); the last row
//    of every piece skipped: NaN in the split test (blocks across pieces), 3e-4 in the composed
//    one, while the unsplit tests pass (their last row belongs to no block); x read with y's
//    column stride: 1.56.
//  * the composed absorbed attention: the sum of the above (products ~1e-14, attention ~1e-13;
//    measured 2.8e-13) within kMulMatNmse = 1e-9; the wrong kernels above give >= 3e-4 there.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "cpu/ops.h"
#include "kv/kv_cache.h"
#include "quant/quant.h"
#include "runtime/devices.h"
#ifdef YITI_VULKAN
#include "vulkan/context.h"
#include "vulkan/ops.h"
#include "vulkan/ops_mla.h"
#include "vulkan/sequence.h"
#endif

#include "../common/vk_test.h"

using namespace yiti::test;

#ifdef YITI_VULKAN

namespace {

constexpr double kMlaAttentionNmse = 1e-10;
constexpr double kMulMatNmse = 1e-9;

// y[m][c][r] = sum_i deq[row0 + m stride + r][i] x[m][c][i], in double.
std::vector<double> ref_batched(const HostWeight& w, int64_t n_in, int64_t row0, int64_t rows, int64_t stride,
                                int64_t n_mats, const std::vector<float>& x, int64_t n_cols) {
    std::vector<double> y((size_t)(n_mats * n_cols * rows));
    for (int64_t m = 0; m < n_mats; ++m)
        for (int64_t c = 0; c < n_cols; ++c)
            for (int64_t r = 0; r < rows; ++r) {
                const float* wr = &w.deq[(size_t)((row0 + m * stride + r) * n_in)];
                const float* xc = &x[(size_t)((m * n_cols + c) * n_in)];
                double s = 0;
                for (int64_t i = 0; i < n_in; ++i) s += (double)wr[i] * xc[i];
                y[(size_t)((m * n_cols + c) * rows + r)] = s;
            }
    return y;
}

class VulkanMla : public VulkanSuite<VulkanMla> {
protected:
    // One batched product per layout (stacked blocks: row0 0, stride = rows; interleaved: the
    // value half of wkv_b, row0 a, stride a + rows) and column count; returns the worst NMSE.
    // With exact_dispatches, checks one dispatch per group of 8 columns (an unsplit matrix).
    static double check_batched(vk::Context& ctx, DType t, int64_t n_in, bool exact_dispatches,
                                uint64_t seed) {
        const int64_t H = 16;
        struct Layout {
            int64_t row0, rows, stride;
        };
        double worst = 0;
        for (const Layout& lo : {Layout{0, 24, 24}, Layout{8, 20, 28}}) {
            const int64_t n_out = lo.row0 + (H - 1) * lo.stride + lo.rows + 3;  // 3 rows past the last block
            HostWeight hw = make_weight(t, n_in, n_out, seed + (uint64_t)lo.row0);
            vk::Matrix w = vk::upload_matrix(ctx, hw.tensor);
            for (int64_t nc : {1, 3, 9}) {
                Rng rng(seed * 31 + (uint64_t)nc);
                const std::vector<float> x = rng.vec((size_t)(H * nc * n_in));
                vk::Buffer bx = to_device(ctx, x);
                // y prefilled with NaN: every output must be written.
                const std::vector<float> nan((size_t)(H * nc * lo.rows),
                                             std::numeric_limits<float>::quiet_NaN());
                vk::Buffer by = to_device(ctx, nan);
                vk::Sequence seq(ctx);
                vk::mul_mat_batched(seq, w, lo.row0, lo.rows, lo.stride, H, bx.view(), nc, by.view());
                if (exact_dispatches) {
                    EXPECT_EQ(w.pieces.size(), 1u);
                    EXPECT_EQ(seq.n_dispatches(), (uint32_t)((nc + 7) / 8)) << "cols " << nc;
                }
                seq.run();
                const double e = nmse(from_device(ctx, by, nan.size()),
                                      ref_batched(hw, n_in, lo.row0, lo.rows, lo.stride, H, x, nc));
                EXPECT_LE(e, kMulMatNmse) << yiti::dtype_name(t) << " row0 " << lo.row0 << " cols " << nc;
                if (!(e <= worst)) worst = e;  // NaN (an output not written) included
            }
        }
        return worst;
    }

    static void batched_type(DType t) {
        const bool is_float = t == DType::F32 || t == DType::F16;
        const double e = check_batched(*ctx_, t, is_float ? 97 : 256, true, 5);
        printf("[ nmse     ] mul_mat_batched %s: worst %.3g (bound %.0e)\n", yiti::dtype_name(t), e,
               kMulMatNmse);
    }

    static void attention_case(DType type);
};

// DeepSeek's absorbed decode: one KV head of 576 values (512 latent + 64 rope), V the first 512
// (a cache without V rows), 16 query heads. Sequences: decode rows at positions 0 (one cache
// row), 37 (across blocks) and 150 (three of the shader's 64-position chunks); a prefill of 9
// tokens at positions 12 .. 20 of a sequence with a cached prefix; a fresh prompt of 7 tokens.
// The prefill rows are causal: each sees the positions up to its own (kv_store writes them all
// before the attention).
void VulkanMla::attention_case(DType type) {
    const int n_head = 16;
    const int64_t hd_k = 576, hd_v = 512;
    yiti::ThreadPool pool(2);
    yiti::kv::KVLayout lay;
    lay.n_layer = 1;
    lay.k_dim = hd_k;
    lay.v_dim = 0;
    lay.type = type;
    lay.block_size = 16;
    yiti::kv::KVCache cache(lay, 512);
    const std::vector<int32_t> last = {0, 37, 150, 20, 6};  // each sequence's last position in the batch
    const std::vector<int64_t> n_new = {1, 1, 1, 9, 7};
    std::vector<yiti::kv::SeqKV> kvs(last.size());
    for (size_t s = 0; s < kvs.size(); ++s) ASSERT_TRUE(cache.reserve(kvs[s], last[s] + 1));
    const int il = 0;
    vk::KVStorage st = vk::alloc_kv_storage(*ctx_, lay, cache.pool().n_blocks(), {il});
    vk::Sequence seq(*ctx_);
    std::vector<vk::Buffer> keep;
    Rng rng(type == DType::F16 ? 91 : 92);
    for (size_t s = 0; s < kvs.size(); ++s) {
        const int64_t n = last[s] + 1;
        const std::vector<float> k = rng.vec((size_t)(n * hd_k));
        std::vector<int32_t> slots;
        for (int64_t pos = 0; pos < n; ++pos) {
            yiti::cpu::store_kv_row(type, &k[pos * hd_k], cache.k_row(il, kvs[s], pos), hd_k);
            slots.push_back(vk::kv_slot(kvs[s], lay.block_size, pos));
        }
        keep.push_back(to_device(*ctx_, k));
        keep.push_back(ctx_->alloc(n * 4, "slots"));
        vk::kv_store(seq, st, il, keep[keep.size() - 2].view(), keep[keep.size() - 2].view(), n, slots.data(),
                     keep.back().view());
    }
    std::vector<yiti::cpu::AttnSeq> seqs;
    int64_t n_tok = 0;
    for (size_t s = 0; s < kvs.size(); ++s) {
        seqs.push_back({&kvs[s], n_tok, n_new[s], (int32_t)(last[s] + 1 - n_new[s])});
        n_tok += n_new[s];
    }
    yiti::cpu::AttnParams ap;
    ap.n_head = n_head;
    ap.n_head_kv = 1;
    ap.head_dim_k = hd_k;
    ap.head_dim_v = hd_v;
    ap.scale = 1.0f / std::sqrt(192.0f);  // DeepSeek's 1 / sqrt(n_nope + n_rot): scores of sd ~2.3
    std::vector<float> qv = rng.vec((size_t)(n_tok * n_head * hd_k));
    for (auto& x : qv) x *= 4;
    std::vector<float> ref((size_t)(n_tok * n_head * hd_v));
    yiti::cpu::attention(pool, ap, cache, il, seqs, qv.data(), ref.data());
    vk::Buffer bq = to_device(*ctx_, qv);
    vk::Buffer bo = to_device(*ctx_, std::vector<float>(ref.size(), std::numeric_limits<float>::quiet_NaN()));
    vk::Buffer bm = ctx_->alloc(vk::attention_meta_words(seqs, lay.block_size) * 4, "meta");
    vk::attention(seq, ap, st, il, seqs, bq.view(), bo.view(), bm.view());
    std::vector<float> got(ref.size());
    seq.download(bo.view(), got.data(), got.size() * 4);
    seq.run();
    const double e = nmse(got, std::vector<double>(ref.begin(), ref.end()));
    EXPECT_LE(e, kMlaAttentionNmse) << yiti::dtype_name(type);
    // Per row kind, so that a failure says which: decode rows, the prefill's, the fresh prompt's.
    for (size_t s = 0; s < seqs.size(); ++s) {
        const size_t b = (size_t)(seqs[s].first * n_head * hd_v), n = (size_t)(seqs[s].n * n_head * hd_v);
        const std::vector<float> g(got.begin() + b, got.begin() + b + n);
        const double es = nmse(g, std::vector<double>(ref.begin() + b, ref.begin() + b + n));
        EXPECT_LE(es, kMlaAttentionNmse) << yiti::dtype_name(type) << " sequence " << s;
    }
    printf("[ nmse     ] MLA attention %s: %.3g (bound %.0e)\n", yiti::dtype_name(type), e,
           kMlaAttentionNmse);
    for (auto& s : kvs) cache.release(s);
}

}  // namespace

TEST_F(VulkanMla, AttentionF32) {
    attention_case(DType::F32);
}

TEST_F(VulkanMla, AttentionF16) {
    attention_case(DType::F16);
}

// Heads larger than the kernel takes are refused with an Error naming the sizes.
TEST_F(VulkanMla, AttentionRejectsHugeHeads) {
    yiti::kv::KVLayout lay;
    lay.n_layer = 1;
    lay.k_dim = 1040;
    lay.v_dim = 0;
    lay.type = DType::F16;
    lay.block_size = 16;
    yiti::kv::KVCache cache(lay, 16);
    yiti::kv::SeqKV s;
    ASSERT_TRUE(cache.reserve(s, 1));
    vk::KVStorage st = vk::alloc_kv_storage(*ctx_, lay, cache.pool().n_blocks(), {0});
    yiti::cpu::AttnParams ap;
    ap.n_head = 2;
    ap.n_head_kv = 1;
    ap.head_dim_k = 1040;
    ap.head_dim_v = 512;
    vk::Buffer b = ctx_->alloc(2 * 1040 * 4, "q");
    vk::Sequence seq(*ctx_);
    try {
        vk::attention(seq, ap, st, 0, {{&s, 0, 1, 0}}, b.view(), b.view(), b.view());
        FAIL() << "no error for a 1040-value head";
    } catch (const yiti::Error& e) {
        EXPECT_NE(std::string(e.what()).find("1040"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(seq.empty());
    cache.release(s);
}

TEST_F(VulkanMla, CopyStrided) {
    // The absorbed attention's copies (H heads, n rows, heads of Dk = n_nope + n_rot values; the
    // latent query rows of Lq = R + n_rot): q_nope gathered per head, the rope parts into the
    // latent rows, the values scattered back; plus a broadcast (stride 0), a long contiguous copy
    // (many workgroups) and a copy within one buffer. Views start at odd float offsets (shifted
    // bindings). Each destination is prefilled and compared whole, bit for bit.
    const int64_t H = 5, n = 3, n_nope = 24, n_rot = 8, Dk = n_nope + n_rot, R = 40, Lq = R + n_rot;
    struct Case {
        const char* what;
        int64_t src_n, dst_n;    // buffer sizes (floats)
        int64_t src_at, dst_at;  // view offsets (floats)
        int64_t n0, n1, len, src_s0, src_s1, dst_s0, dst_s1;
    };
    const std::vector<Case> cases = {
        {"gather q_nope", n * H * Dk, H * n * n_nope, 0, 0, H, n, n_nope, Dk, H * Dk, n * n_nope, n_nope},
        {"rope parts", n * H * Dk, n * H * Lq, n_nope, R, n, H, n_rot, H * Dk, Dk, H * Lq, Lq},
        {"scatter values", H * n * n_nope + 3, n * H * n_nope + 5, 3, 5, H, n, n_nope, n * n_nope, n_nope,
         n_nope, H * n_nope},
        {"broadcast", 17 + 1, 4 * 17 + 1, 1, 1, 4, 1, 17, 0, 0, 17, 0},
        {"contiguous", 100003, 100003 + 7, 0, 7, 1, 1, 100003, 0, 0, 0, 0},
    };
    vk::Sequence seq(*ctx_);
    std::vector<vk::Buffer> keep;
    std::vector<std::vector<float>> got(cases.size() + 1), want(cases.size() + 1);
    for (size_t i = 0; i < cases.size(); ++i) {
        const Case& c = cases[i];
        Rng rng(100 + i);
        const std::vector<float> src = rng.vec((size_t)c.src_n);
        want[i] = rng.vec((size_t)c.dst_n);
        keep.push_back(to_device(*ctx_, src));
        keep.push_back(to_device(*ctx_, want[i]));
        for (int64_t i0 = 0; i0 < c.n0; ++i0)
            for (int64_t i1 = 0; i1 < c.n1; ++i1)
                for (int64_t e = 0; e < c.len; ++e)
                    want[i][(size_t)(c.dst_at + i0 * c.dst_s0 + i1 * c.dst_s1 + e)] =
                        src[(size_t)(c.src_at + i0 * c.src_s0 + i1 * c.src_s1 + e)];
        const vk::BufferView sv = keep[keep.size() - 2].view(), dv = keep.back().view();
        vk::copy_strided(seq, sv.sub(c.src_at * 4, sv.size - c.src_at * 4),
                         dv.sub(c.dst_at * 4, dv.size - c.dst_at * 4), c.n0, c.n1, c.len, c.src_s0, c.src_s1,
                         c.dst_s0, c.dst_s1);
        got[i].resize(want[i].size());
        seq.download(dv, got[i].data(), got[i].size() * 4);
    }
    // Within one buffer: rows 0 .. 3 of 10 floats (stride 12) to its second half, transposed.
    {
        Rng rng(7);
        want.back() = rng.vec(100);
        keep.push_back(to_device(*ctx_, want.back()));
        const std::vector<float> src = want.back();
        for (int64_t i0 = 0; i0 < 2; ++i0)
            for (int64_t i1 = 0; i1 < 2; ++i1)
                for (int64_t e = 0; e < 10; ++e)
                    want.back()[(size_t)(50 + i0 * 10 + i1 * 20 + e)] = src[(size_t)(i0 * 24 + i1 * 12 + e)];
        const vk::BufferView v = keep.back().view();
        vk::copy_strided(seq, v.sub(0, 200), v.sub(200, 200), 2, 2, 10, 24, 12, 10, 20);
        got.back().resize(100);
        seq.download(v, got.back().data(), 400);
    }
    EXPECT_EQ(seq.n_dispatches(), (uint32_t)cases.size() + 1);
    seq.run();
    for (size_t i = 0; i < got.size(); ++i)
        EXPECT_EQ(first_diff(got[i], want[i]), -1) << (i < cases.size() ? cases[i].what : "one buffer");

    // A span beyond one binding: an Error naming it, nothing recorded. With a 1 KiB range, 300
    // floats do not fit (as destination or as source); 200 do.
    auto small = limited_context(index_, 1024);
    vk::Buffer a = small->alloc(4096, "a"), b = small->alloc(4096, "b");
    vk::Sequence s2(*small);
    for (int side = 0; side < 2; ++side) {
        try {
            // 3 rows of 100, 100 apart on one side and 10 apart on the other.
            const int64_t s_src = side ? 100 : 10, s_dst = side ? 10 : 100;
            vk::copy_strided(s2, a.view(), b.view(), 3, 1, 100, s_src, 0, s_dst, 0);
            FAIL() << "no error for a span over the binding range";
        } catch (const yiti::Error& e) {
            const std::string m = e.what();
            EXPECT_NE(m.find(side ? "source" : "destination"), std::string::npos) << m;
            EXPECT_NE(m.find("binding"), std::string::npos) << m;
        }
    }
    EXPECT_TRUE(s2.empty());
    vk::copy_strided(s2, a.view(), b.view(), 2, 1, 100, 100, 0, 100, 0);  // 200 floats: fits
    s2.run();
}

TEST_F(VulkanMla, MulMatBatchedF32) {
    batched_type(DType::F32);
}
TEST_F(VulkanMla, MulMatBatchedF16) {
    batched_type(DType::F16);
}
TEST_F(VulkanMla, MulMatBatchedQ8_0) {
    batched_type(DType::Q8_0);
}
TEST_F(VulkanMla, MulMatBatchedQ4_K) {
    batched_type(DType::Q4_K);
}
TEST_F(VulkanMla, MulMatBatchedQ6_K) {
    batched_type(DType::Q6_K);
}

// A 4 KiB storage range: the weights split into pieces of 10 (F32, rows of 97), 15 (Q8_0) and
// 19 (Q6_K) rows, so that blocks of 20 and 24 rows lie across pieces; x holds at most 10 / 3
// columns per binding (more dispatches, groups of mats). A column that does not fit a binding is
// an Error, with nothing recorded.
TEST_F(VulkanMla, MulMatBatchedSplitPieces) {
    auto small = limited_context(index_, 4096);
    double worst = 0;
    for (DType t : {DType::F32, DType::Q8_0, DType::Q6_K}) {
        const int64_t n_in = t == DType::F32 ? 97 : 256;
        {
            HostWeight hw = make_weight(t, n_in, 100, 1);
            EXPECT_GE(vk::upload_matrix(*small, hw.tensor).pieces.size(), 5u) << yiti::dtype_name(t);
        }
        const double e = check_batched(*small, t, n_in, false, 9);
        if (!(e <= worst)) worst = e;
    }
    printf("[ nmse     ] mul_mat_batched, split: worst %.3g (bound %.0e)\n", worst, kMulMatNmse);

    auto tiny = limited_context(index_, 1024);
    HostWeight hw = make_weight(DType::F16, 400, 8, 3);  // rows of 800 bytes; columns of 1600
    vk::Matrix w = vk::upload_matrix(*tiny, hw.tensor);
    vk::Buffer x = tiny->alloc(2 * 400 * 4, "x"), y = tiny->alloc(2 * 4 * 4, "y");
    vk::Sequence seq(*tiny);
    try {
        vk::mul_mat_batched(seq, w, 0, 4, 4, 2, x.view(), 1, y.view());
        FAIL() << "no error for a column over the binding range";
    } catch (const yiti::Error& e) {
        EXPECT_NE(std::string(e.what()).find("binding"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(seq.empty());
}

// The absorbed attention of one DeepSeek layer composed of the device ops (the shapes of
// DeepSeek-V2-Lite: 16 heads, n_nope 128, n_rot 64, latent 512, Dv 128) against the CPU's form of
// the same (model/deepseek2.cpp's attend_absorbed): q_nope gathered per head, absorbed through the
// per-head key blocks (Q8_0, as the model's packed copy), the rope parts beside it, attention over
// the latent cache, the latent output through the value half of wkv_b (Q8_0), scattered back to
// [n][H][Dv]. Bound: kMulMatNmse-sized errors of the products and kMlaAttentionNmse's of the
// attention, both far below 1e-9.
TEST_F(VulkanMla, AbsorbedAttentionComposed) {
    const int64_t H = 16, n_nope = 128, n_rot = 64, R = 512, Dv = 128, Dk = n_nope + n_rot, Lq = R + n_rot;
    yiti::ThreadPool pool(2);
    HostWeight wk = make_weight(DType::Q8_0, n_nope, H * R, 41);          // [H][R][n_nope]
    HostWeight wkv = make_weight(DType::Q8_0, R, H * (n_nope + Dv), 42);  // [H][n_nope + Dv][R]
    yiti::kv::KVLayout lay;
    lay.n_layer = 1;
    lay.k_dim = Lq;
    lay.v_dim = 0;
    lay.type = DType::F16;
    lay.block_size = 16;
    yiti::kv::KVCache cache(lay, 256);
    const std::vector<int32_t> last = {40, 3};
    std::vector<yiti::kv::SeqKV> kvs(last.size());
    for (size_t s = 0; s < kvs.size(); ++s) ASSERT_TRUE(cache.reserve(kvs[s], last[s] + 1));
    vk::KVStorage st = vk::alloc_kv_storage(*ctx_, lay, cache.pool().n_blocks(), {0});
    vk::Sequence seq(*ctx_);
    std::vector<vk::Buffer> keep;
    Rng rng(43);
    for (size_t s = 0; s < kvs.size(); ++s) {
        const int64_t n = last[s] + 1;
        const std::vector<float> k = rng.vec((size_t)(n * Lq));
        std::vector<int32_t> slots;
        for (int64_t pos = 0; pos < n; ++pos) {
            yiti::cpu::store_kv_row(lay.type, &k[pos * Lq], cache.k_row(0, kvs[s], pos), Lq);
            slots.push_back(vk::kv_slot(kvs[s], lay.block_size, pos));
        }
        keep.push_back(to_device(*ctx_, k));
        keep.push_back(ctx_->alloc(n * 4, "slots"));
        vk::kv_store(seq, st, 0, keep[keep.size() - 2].view(), keep[keep.size() - 2].view(), n, slots.data(),
                     keep.back().view());
    }
    // One decode row per sequence.
    std::vector<yiti::cpu::AttnSeq> seqs = {{&kvs[0], 0, 1, last[0]}, {&kvs[1], 1, 1, last[1]}};
    const int64_t n = 2;
    yiti::cpu::AttnParams ap;
    ap.n_head = (int)H;
    ap.n_head_kv = 1;
    ap.head_dim_k = Lq;
    ap.head_dim_v = R;
    ap.scale = 1.0f / std::sqrt((float)Dk);
    const std::vector<float> q = rng.vec((size_t)(n * H * Dk));  // [n][H][Dk]

    // The CPU: attend_absorbed's arithmetic with the reference dequantization (double products).
    std::vector<float> qa((size_t)(n * H * Lq)), ol((size_t)(n * H * R));
    for (int64_t r = 0; r < n; ++r)
        for (int64_t h = 0; h < H; ++h) {
            const float* qh = &q[(size_t)((r * H + h) * Dk)];
            float* dst = &qa[(size_t)((r * H + h) * Lq)];
            for (int64_t j = 0; j < R; ++j) {
                double s = 0;
                for (int64_t i = 0; i < n_nope; ++i)
                    s += (double)wk.deq[(size_t)((h * R + j) * n_nope + i)] * qh[i];
                dst[j] = (float)s;
            }
            for (int64_t d = 0; d < n_rot; ++d) dst[R + d] = qh[n_nope + d];
        }
    yiti::cpu::attention(pool, ap, cache, 0, seqs, qa.data(), ol.data());
    std::vector<double> ref((size_t)(n * H * Dv));
    for (int64_t r = 0; r < n; ++r)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t d = 0; d < Dv; ++d) {
                const float* wr = &wkv.deq[(size_t)((h * (n_nope + Dv) + n_nope + d) * R)];
                const float* lr = &ol[(size_t)((r * H + h) * R)];
                double s = 0;
                for (int64_t j = 0; j < R; ++j) s += (double)wr[j] * lr[j];
                ref[(size_t)((r * H + h) * Dv + d)] = s;
            }

    // The device.
    vk::Matrix wk_d = vk::upload_matrix(*ctx_, wk.tensor), wkv_d = vk::upload_matrix(*ctx_, wkv.tensor);
    vk::Buffer bq = to_device(*ctx_, q);
    vk::Buffer qn = ctx_->alloc((size_t)(H * n * n_nope) * 4, "q_nope"),
               qo = ctx_->alloc((size_t)(H * n * R) * 4, "q_abs");
    vk::Buffer bqa = ctx_->alloc((size_t)(n * H * Lq) * 4, "qa"),
               bol = ctx_->alloc((size_t)(n * H * R) * 4, "ol");
    vk::Buffer in = ctx_->alloc((size_t)(H * n * R) * 4, "in"),
               out = ctx_->alloc((size_t)(H * n * Dv) * 4, "out");
    vk::Buffer attn = ctx_->alloc((size_t)(n * H * Dv) * 4, "attn");
    vk::Buffer bm = ctx_->alloc(vk::attention_meta_words(seqs, lay.block_size) * 4, "meta");
    const uint32_t d0 = seq.n_dispatches();
    vk::copy_strided(seq, bq.view(), qn.view(), H, n, n_nope, Dk, H * Dk, n * n_nope, n_nope);
    vk::mul_mat_batched(seq, wk_d, 0, R, R, H, qn.view(), n, qo.view());
    vk::copy_strided(seq, qo.view(), bqa.view(), H, n, R, n * R, R, Lq, H * Lq);
    vk::copy_strided(seq, bq.view().sub(n_nope * 4, bq.size() - n_nope * 4),
                     bqa.view().sub(R * 4, bqa.size() - R * 4), n, H, n_rot, H * Dk, Dk, H * Lq, Lq);
    vk::attention(seq, ap, st, 0, seqs, bqa.view(), bol.view(), bm.view());
    vk::copy_strided(seq, bol.view(), in.view(), H, n, R, R, H * R, n * R, R);
    vk::mul_mat_batched(seq, wkv_d, n_nope, Dv, n_nope + Dv, H, in.view(), n, out.view());
    vk::copy_strided(seq, out.view(), attn.view(), H, n, Dv, n * Dv, Dv, Dv, H * Dv);
    EXPECT_EQ(seq.n_dispatches() - d0, 8u);
    std::vector<float> got((size_t)(n * H * Dv));
    seq.download(attn.view(), got.data(), got.size() * 4);
    seq.run();
    const double e = nmse(got, ref);
    EXPECT_LE(e, kMulMatNmse);
    printf("[ nmse     ] absorbed attention composed: %.3g (bound %.0e)\n", e, kMulMatNmse);
    for (auto& s : kvs) cache.release(s);
}

#else  // YITI_VULKAN

TEST(VulkanMla, NotBuilt) {
    GTEST_SKIP() << "this build has no Vulkan backend (configure with libvulkan-dev and glslc)";
}

#endif  // YITI_VULKAN
