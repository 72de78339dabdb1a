// The Vulkan Mixture-of-Experts kernels (vulkan/ops_moe.h) against the CPU: expert selection
// (model::route_experts), the chosen experts' products, the weighted sum, and the whole routed FFN
// against model::moe_ffn. The device: as common/vk_test.h chooses it (YITI_TEST_VK_DEVICE or the
// first usable Vulkan device, lavapipe included); without one the tests skip.
//
// Bounds:
//  * route ids: equal to the CPU's, exactly. The GPU's exp may be (3 + 2|x|) ulp off and it sums in
//    F32 where the CPU sums in double, so scores differ by ~1e-6 relative: the random logits are
//    drawn again for a token until every decision of the choice (the k+1 best selection scores and
//    the kept groups' boundary) has a gap of at least 1e-4 of the largest score (near_tie below),
//    100x that error. Exact ties (equal logits give equal floats on both sides) are checked on
//    constructed rows in RouteTies. Checked by hand to fail: expert ties broken to the higher index
//    and group ties to the higher group (RouteTies); a group scored by its best alone, or the bias
//    not added (RouteMatchesCpu, SplitBindings, the FFN); renorm dropped (weights 2e-2 .. 45).
//  * route weights: kRouteWeightNmse = 1e-11. Logits in [-4, 4]: softmax's exp(x - max) for
//    |x| <= 8 is at most 19 ulp off (1.1e-6 relative), the F32 sum adds ~u log2(n); sigmoid's
//    1 / (1 + exp(-l)) at most 11 + 2.5 ulp. Renormalizing divides by a sum with the same relative
//    error: at most ~2.5e-6 relative per weight, NMSE <= 6e-12 if every weight were at its worst.
//    Weights of other experts (a wrong choice) give NMSE >= 4e-5.
//  * mul_mat_id: kMulMatIdNmse = 1e-9 against the reference dequantization multiplied in double,
//    the derivation of test_vulkan_ops.cpp's kMulMatNmse (same dequantized values, exact products,
//    F32 sums: NMSE ~ u^2 K = 1e-12 for K = 256 here). Checked by hand to fail: the next expert's
//    weights (0.5 .. 2); a piece taking its previous expert too (0.17, split); a shared x row
//    indexed without the dispatch's first slot (0.33, split: only a dispatch starting mid-token
//    sees it).
//  * moe_combine: kCombineNmse = 1e-12 against a double sum. Each slot adds an fma (or a product
//    and a sum: Vulkan does not promise a fused fma), at most 2u relative to the partial sum per
//    slot: for k <= 8, |error| <= 18 u max|partial sum|, NMSE ~1e-13 on these random data even if
//    every element were near that (measured 5e-15). Checked by hand to
//    fail: the last slot dropped (>= 2.7e-4), the weights one slot off (>= 3.6e-4), accumulate
//    ignored (>= 1.3e-2).
//  * the routed FFN: kFfnNmse = 1e-9 against model::moe_ffn in exact mode (the router product, the
//    gate/up/down products on F32 dequantized weights, SwiGLU, the weighted sum). The products' F32
//    sums differ in order (u^2 K ~ 1e-12 each, K <= 256), silu's exp by a few ulp (~1e-13), the
//    routing weights as above (<= 6e-12) and the sum over experts in another order (~u^2): ~2e-11
//    in all, the bound leaves ~50x. Checked by hand to fail: the next expert's weights (1.6),
//    weights one slot off (3.7e-2), renorm dropped (0.16), the bias not added (4.9e-2), groups
//    scored by their best alone (0.23).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "quant/quant.h"
#include "runtime/devices.h"
#ifdef YITI_VULKAN
#include "cpu/route.h"
#include "model/blocks.h"
#include "runtime/backend.h"
#include "vulkan/context.h"
#include "vulkan/ops.h"
#include "vulkan/ops_moe.h"
#include "vulkan/sequence.h"
#endif

#include "../common/vk_test.h"

using namespace yiti::test;

#ifdef YITI_VULKAN

namespace {

constexpr double kRouteWeightNmse = 1e-11;
constexpr double kMulMatIdNmse = 1e-9;
constexpr double kCombineNmse = 1e-12;
constexpr double kFfnNmse = 1e-9;

// ------------------------------------------------------------------ routing references

yiti::cpu::RouteParams cpu_params(const vk::RouteParams& rp, const float* bias) {
    yiti::cpu::RouteParams c;
    c.sigmoid = rp.sigmoid;
    c.k = rp.k;
    c.selection_bias = bias;
    c.renorm = rp.renorm;
    c.scale = rp.scale;
    c.n_groups = rp.n_groups;
    c.n_groups_used = rp.n_groups_used;
    return c;
}

// Whether a row of logits comes near a tie in some decision of the choice (in double): the kept
// groups' boundary, or the order of the k+1 best selection scores (the slots' order and the k-th /
// (k+1)-th boundary). Near: a gap under 1e-4 of the largest score plus the largest bias.
bool near_tie(const float* l, int n, const vk::RouteParams& rp, const float* bias) {
    std::vector<double> prob((size_t)n), sel((size_t)n);
    double mx = -INFINITY;
    for (int e = 0; e < n; ++e) mx = std::max(mx, (double)l[e]);
    double sum = 0;
    for (int e = 0; e < n; ++e) {
        prob[e] = rp.sigmoid ? 1.0 / (1.0 + std::exp(-(double)l[e])) : std::exp((double)l[e] - mx);
        sum += prob[e];
    }
    double scale = 0, bmax = 0;
    for (int e = 0; e < n; ++e) {
        if (!rp.sigmoid) prob[e] /= sum;
        sel[e] = prob[e] + (bias ? bias[e] : 0.0);
        scale = std::max(scale, prob[e]);
        bmax = std::max(bmax, bias ? std::fabs((double)bias[e]) : 0.0);
    }
    const double gap = 1e-4 * (scale + bmax);
    if (rp.n_groups > 1 && rp.n_groups_used > 0 && rp.n_groups_used < rp.n_groups && n % rp.n_groups == 0) {
        const int per = n / rp.n_groups;
        std::vector<std::pair<double, int>> gs;
        for (int g = 0; g < rp.n_groups; ++g) {
            std::vector<double> v(sel.begin() + g * per, sel.begin() + (g + 1) * per);
            std::sort(v.begin(), v.end(), std::greater<double>());
            gs.emplace_back(per >= 2 ? v[0] + v[1] : v[0], g);
        }
        std::sort(gs.begin(), gs.end(), std::greater<>());
        if (gs[rp.n_groups_used - 1].first - gs[rp.n_groups_used].first < 2 * gap) return true;
        for (int r = rp.n_groups_used; r < rp.n_groups; ++r)
            for (int e = 0; e < per; ++e) sel[gs[r].second * per + e] = -INFINITY;
    }
    std::vector<double> s = sel;
    std::sort(s.begin(), s.end(), std::greater<double>());
    for (int j = 0; j < rp.k && j + 1 < n; ++j)
        if (std::isfinite(s[j + 1]) && s[j] - s[j + 1] < gap) return true;
    return false;
}

// Random logits in [-4, 4), each row drawn again while it comes near a tie.
std::vector<float> clean_logits(Rng& rng, int64_t n_tok, int n, const vk::RouteParams& rp,
                                const float* bias) {
    std::vector<float> l((size_t)(n_tok * n));
    for (int64_t t = 0; t < n_tok; ++t) {
        int tries = 0;
        do {
            for (int e = 0; e < n; ++e) l[t * n + e] = rng.next() * 4.0f;
            if (++tries > 1000) throw std::runtime_error("no row of logits without near ties");
        } while (near_tie(&l[t * n], n, rp, bias));
    }
    return l;
}

// ------------------------------------------------------------------ weights

// A random stacked expert weight [n_in, n_out, n_expert] of type t as GGUF bytes (experts
// expert_pad bytes further apart than their size), and its reference dequantization.
struct HostExperts {
    std::vector<uint8_t> bytes;
    std::vector<float> deq;  // [n_expert][n_out][n_in]
    yiti::Tensor tensor;
};

HostExperts make_experts(DType t, int64_t n_in, int64_t n_out, int n_expert, uint64_t seed,
                         size_t expert_pad = 0) {
    HostExperts w;
    Rng rng(seed);
    const size_t rb = yiti::row_size(t, n_in), eb = rb * n_out + expert_pad;
    w.bytes.assign(eb * n_expert, 0xAB);
    w.deq.resize((size_t)(n_in * n_out * n_expert));
    for (int e = 0; e < n_expert; ++e)
        for (int64_t r = 0; r < n_out; ++r) {
            const std::vector<float> src = rng.vec((size_t)n_in);
            uint8_t* row = &w.bytes[e * eb + r * rb];
            yiti::quant::quantize_row_ref(t, src.data(), row, n_in);
            yiti::quant::dequantize_row_ref(t, row, &w.deq[(e * n_out + r) * n_in], n_in);
        }
    const int64_t ne[3] = {n_in, n_out, n_expert};
    w.tensor = yiti::make_tensor_view("test.ffn_exps", t, ne, 3, w.bytes.data());
    w.tensor.nb[2] = eb;
    w.tensor.nb[3] = eb * n_expert;
    return w;
}

// y[q][r] = sum_i deq[ids[q]][r][i] x_row(q)[i] in double, q = t * k + j.
std::vector<double> ref_mul_mat_id(const HostExperts& w, int64_t n_in, int64_t n_out,
                                   const std::vector<float>& x, bool per_slot,
                                   const std::vector<int32_t>& ids, int k) {
    const int64_t n_pairs = (int64_t)ids.size();
    std::vector<double> y((size_t)(n_pairs * n_out));
    for (int64_t q = 0; q < n_pairs; ++q) {
        const float* xr = &x[(per_slot ? q : q / k) * n_in];
        const float* we = &w.deq[(size_t)ids[q] * n_out * n_in];
        for (int64_t r = 0; r < n_out; ++r) {
            double s = 0;
            for (int64_t i = 0; i < n_in; ++i) s += (double)we[r * n_in + i] * xr[i];
            y[q * n_out + r] = s;
        }
    }
    return y;
}

// A routing configuration the route and FFN tests run.
struct RouteConfig {
    const char* name;
    vk::RouteParams rp;
    int n_expert;
    bool bias;
};

class VulkanMoe : public VulkanSuite<VulkanMoe> {
protected:
    // Routes n_tok rows on the device and on the CPU; ids must match exactly, weights within
    // kRouteWeightNmse. Returns the NMSE.
    static double check_route(vk::Context& ctx, const vk::RouteParams& rp, int n_expert, int64_t n_tok,
                              const std::vector<float>& logits, const std::vector<float>* bias,
                              const std::string& what) {
        const auto ref = yiti::cpu::route_experts(logits.data(), n_tok, n_expert,
                                                  cpu_params(rp, bias ? bias->data() : nullptr));
        vk::Buffer bl = to_device(ctx, logits);
        vk::Buffer bb = bias ? to_device(ctx, *bias) : vk::Buffer();
        vk::Buffer bi = ctx.alloc(n_tok * rp.k * 4, "ids"), bw = ctx.alloc(n_tok * rp.k * 4, "weights");
        vk::Sequence seq(ctx);
        const vk::BufferView bias_view = bias ? bb.view() : vk::BufferView{};
        vk::route(seq, rp, bl.view(), bias ? &bias_view : nullptr, n_tok, n_expert, bi.view(), bw.view());
        seq.run();
        const auto ids = from_device<int32_t>(ctx, bi, ref.ids.size());
        const auto w = from_device(ctx, bw, ref.weights.size());
        EXPECT_EQ(ids, ref.ids) << what;
        const double e = nmse(w, to_double(ref.weights));
        EXPECT_LE(e, kRouteWeightNmse) << what;
        return e;
    }

    // mul_mat_id for n_tok in {1, 3, 9}, x shared and per slot, all in one sequence; returns the
    // worst NMSE. Ids: random (repeats within a token allowed) but every expert used, the last
    // among them.
    static double check_mul_mat_id(vk::Context& ctx, const HostExperts& hw, int64_t n_in, int64_t n_out,
                                   int n_expert, int k, uint64_t seed, const std::string& what,
                                   int* n_dispatches = nullptr) {
        vk::Experts w = vk::upload_experts(ctx, hw.tensor);
        Rng rng(seed);
        struct Case {
            int64_t n_tok;
            bool per_slot;
            std::vector<float> x;
            std::vector<int32_t> ids;
            vk::Buffer bx, bi, by;
            std::vector<float> got;
        };
        std::vector<Case> cases;
        for (int64_t n_tok : {1, 3, 9})
            for (bool per_slot : {false, true}) {
                Case c;
                c.n_tok = n_tok;
                c.per_slot = per_slot;
                c.x = rng.vec((size_t)((per_slot ? n_tok * k : n_tok) * n_in));
                for (int64_t q = 0; q < n_tok * k; ++q) c.ids.push_back(rng.below(n_expert));
                c.ids.back() = n_expert - 1;
                if (n_tok * k >= n_expert)
                    for (int e = 0; e < n_expert; ++e) c.ids[(size_t)(e * 7) % c.ids.size()] = e;
                cases.push_back(std::move(c));
            }
        vk::Sequence seq(ctx);
        for (Case& c : cases) {
            c.bx = to_device(ctx, c.x);
            c.bi = to_device(ctx, c.ids);
            c.by = ctx.alloc(c.ids.size() * n_out * 4, "y");
            vk::mul_mat_id(seq, w, c.bx.view(), c.per_slot, c.bi.view(), c.n_tok, k, c.by.view());
            c.got.resize(c.ids.size() * n_out);
            seq.download(c.by.view(), c.got.data(), c.got.size() * 4);
        }
        if (n_dispatches) *n_dispatches = (int)seq.n_dispatches();
        seq.run();
        double worst = 0;
        for (const Case& c : cases) {
            const double e = nmse(c.got, ref_mul_mat_id(hw, n_in, n_out, c.x, c.per_slot, c.ids, k));
            EXPECT_LE(e, kMulMatIdNmse) << what << " n_tok " << c.n_tok << " per_slot " << c.per_slot;
            worst = std::max(worst, e);
        }
        return worst;
    }

    static void mul_mat_id_type(DType t) {
        const bool is_float = t == DType::F32 || t == DType::F16 || t == DType::BF16;
        const int64_t n_in = is_float ? 97 : 256, n_out = 67;
        const int n_expert = 6, k = 3;
        const HostExperts hw = make_experts(t, n_in, n_out, n_expert, 1);
        const double worst = check_mul_mat_id(*ctx_, hw, n_in, n_out, n_expert, k, 2, yiti::dtype_name(t));
        printf("[ nmse     ] mul_mat_id %s: worst %.3g (bound %.0e)\n", yiti::dtype_name(t), worst,
               kMulMatIdNmse);
    }
};

}  // namespace

// ------------------------------------------------------------------ route

TEST_F(VulkanMoe, RouteMatchesCpu) {
    const RouteConfig configs[] = {
        {"mixtral (softmax, renorm, 2 of 8)", {false, 2, true, 1.0f, 0, 0}, 8, false},
        {"deepseek-v3 (sigmoid, bias, 8 of 256 in 4 of 8 groups, scale 2.5)",
         {true, 8, true, 2.5f, 8, 4},
         256,
         true},
        {"qwen3 (softmax, 8 of 128, no renorm)", {false, 8, false, 1.0f, 0, 0}, 128, false},
        {"qwen3-next (softmax, renorm, 10 of 512)", {false, 10, true, 1.0f, 0, 0}, 512, false},
        {"groups of one expert (sigmoid, 3 of 8 groups, 2 of 8)", {true, 2, false, 1.0f, 8, 3}, 8, true},
    };
    double worst = 0;
    for (const RouteConfig& c : configs) {
        Rng rng((uint64_t)c.n_expert * 3 + c.rp.k);
        const std::vector<float> bias = rng.vec((size_t)c.n_expert, 0.1f);
        for (int64_t n_tok : {1, 5, 33}) {
            const std::vector<float> logits =
                clean_logits(rng, n_tok, c.n_expert, c.rp, c.bias ? bias.data() : nullptr);
            worst =
                std::max(worst, check_route(*ctx_, c.rp, c.n_expert, n_tok, logits, c.bias ? &bias : nullptr,
                                            std::string(c.name) + " n_tok " + std::to_string(n_tok)));
        }
    }
    printf("[ nmse     ] route weights: worst %.3g (bound %.0e)\n", worst, kRouteWeightNmse);
}

TEST_F(VulkanMoe, RouteTies) {
    // Equal logits give equal scores on both sides: ties go to the lower expert (within the slots
    // and at the k-th / (k+1)-th boundary) and to the lower group.
    {
        const vk::RouteParams rp{false, 4, true, 1.0f, 0, 0};
        const std::vector<float> logits = {1, 3, 3, 0, 3, 2, 2, -1};
        check_route(*ctx_, rp, 8, 1, logits, nullptr, "expert ties");
        const auto ref = yiti::cpu::route_experts(logits.data(), 1, 8, cpu_params(rp, nullptr));
        EXPECT_EQ(ref.ids, (std::vector<int32_t>{1, 2, 4, 5}));
    }
    {
        // Groups 0, 2 and 3 have the same two best scores (group 3 in other places), group 1 the
        // best: the groups kept are 1 and 0, and the third slot is expert 0 (group 2 or 3 kept
        // instead would give expert 8 or 14, of the same score).
        const vk::RouteParams rp{true, 3, true, 2.5f, 4, 2};
        const std::vector<float> logits = {1.0f, 0.5f, -1, -2, 3.0f, -3, -3,   2.5f,
                                           1.0f, 0.5f, -1, -2, 0.5f, -1, 1.0f, -2};
        check_route(*ctx_, rp, 16, 1, logits, nullptr, "group ties");
        const auto ref = yiti::cpu::route_experts(logits.data(), 1, 16, cpu_params(rp, nullptr));
        EXPECT_EQ(ref.ids, (std::vector<int32_t>{4, 7, 0}));
    }
    {
        // Two tokens; groups of one expert (a group's score is its best); and n_expert not a
        // multiple of n_groups (no group limit).
        const vk::RouteParams rp{false, 2, false, 1.0f, 8, 3};
        const std::vector<float> logits = {0, 2, 1, 2, 2, 0, 1, 1, 5, 5, 5, 5, 5, 5, 5, 5};
        check_route(*ctx_, rp, 8, 2, logits, nullptr, "groups of one");
        const vk::RouteParams rp2{false, 3, true, 1.0f, 4, 2};
        const std::vector<float> l2 = {0, 1, 1, 0, 2, 2, 0, 1, 1, 2};
        check_route(*ctx_, rp2, 10, 1, l2, nullptr, "10 experts, 4 groups");
    }
}

// ------------------------------------------------------------------ mul_mat_id

TEST_F(VulkanMoe, MulMatIdF32) {
    mul_mat_id_type(DType::F32);
}
TEST_F(VulkanMoe, MulMatIdF16) {
    mul_mat_id_type(DType::F16);
}
TEST_F(VulkanMoe, MulMatIdQ8_0) {
    mul_mat_id_type(DType::Q8_0);
}
TEST_F(VulkanMoe, MulMatIdQ4_0) {
    mul_mat_id_type(DType::Q4_0);
}
TEST_F(VulkanMoe, MulMatIdQ4_K) {
    mul_mat_id_type(DType::Q4_K);
}
TEST_F(VulkanMoe, MulMatIdQ6_K) {
    mul_mat_id_type(DType::Q6_K);
}
TEST_F(VulkanMoe, MulMatIdIQ4_XS) {
    mul_mat_id_type(DType::IQ4_XS);
}
// The other weight types (every shader variant).
TEST_F(VulkanMoe, MulMatIdBF16) {
    mul_mat_id_type(DType::BF16);
}
TEST_F(VulkanMoe, MulMatIdQ4_1) {
    mul_mat_id_type(DType::Q4_1);
}
TEST_F(VulkanMoe, MulMatIdQ5_0) {
    mul_mat_id_type(DType::Q5_0);
}
TEST_F(VulkanMoe, MulMatIdQ5_1) {
    mul_mat_id_type(DType::Q5_1);
}
TEST_F(VulkanMoe, MulMatIdIQ4_NL) {
    mul_mat_id_type(DType::IQ4_NL);
}
TEST_F(VulkanMoe, MulMatIdQ2_K) {
    mul_mat_id_type(DType::Q2_K);
}
TEST_F(VulkanMoe, MulMatIdQ3_K) {
    mul_mat_id_type(DType::Q3_K);
}
TEST_F(VulkanMoe, MulMatIdQ5_K) {
    mul_mat_id_type(DType::Q5_K);
}

// ------------------------------------------------------------------ moe_combine

TEST_F(VulkanMoe, Combine) {
    double worst = 0;
    for (int64_t n_tok : {1, 5})
        for (int k : {1, 2, 8})
            for (int64_t n : {1, 300})
                for (bool acc : {false, true}) {
                    Rng rng((uint64_t)(n_tok * 100 + k * 10 + n + acc));
                    const std::vector<float> y = rng.vec((size_t)(n_tok * k * n)),
                                             w = rng.vec((size_t)(n_tok * k)),
                                             out0 = rng.vec((size_t)(n_tok * n));
                    std::vector<double> ref((size_t)(n_tok * n));
                    for (int64_t t = 0; t < n_tok; ++t)
                        for (int64_t i = 0; i < n; ++i) {
                            double s = acc ? out0[t * n + i] : 0.0;
                            for (int j = 0; j < k; ++j) s += (double)w[t * k + j] * y[(t * k + j) * n + i];
                            ref[t * n + i] = s;
                        }
                    vk::Buffer by = to_device(*ctx_, y), bw = to_device(*ctx_, w),
                               bo = to_device(*ctx_, out0);
                    vk::Sequence seq(*ctx_);
                    vk::moe_combine(seq, by.view(), bw.view(), n_tok, k, n, bo.view(), acc);
                    seq.run();
                    const double e = nmse(from_device(*ctx_, bo, ref.size()), ref);
                    EXPECT_LE(e, kCombineNmse)
                        << "n_tok " << n_tok << " k " << k << " n " << n << " acc " << acc;
                    worst = std::max(worst, e);
                }
    printf("[ nmse     ] moe_combine: worst %.3g (bound %.0e)\n", worst, kCombineNmse);
}

// ------------------------------------------------------------------ split bindings

// A storage range of 4 KiB (1 KiB for the router) and blocks of 64 KiB: experts in pieces of a few
// each, the pairs, tokens and rows in several dispatches per binding, bindings at unaligned offsets.
TEST_F(VulkanMoe, SplitBindings) {
    auto small = limited_context(index_, 4096, 65536);
    double worst = 0;
    {
        // Q8_0: 272-byte rows, experts of 5 rows (1360 bytes): 3 per piece, 8 experts in 3 pieces;
        // x rows of 1 KiB: 3 per binding (7 pairs per dispatch with a shared x, 3 per slot). The
        // experts 100 bytes further apart than their size (uploaded packed).
        const int n_expert = 8, k = 3;
        const HostExperts hw = make_experts(DType::Q8_0, 256, 5, n_expert, 3, 100);
        {
            vk::Experts w = vk::upload_experts(*small, hw.tensor);
            ASSERT_EQ(w.pieces.size(), 3u);
            EXPECT_EQ(w.pieces[2].e0, 6);
            EXPECT_EQ(w.pieces[2].n_experts, 2);
        }
        int n_dispatches = 0;
        worst = std::max(worst,
                         check_mul_mat_id(*small, hw, 256, 5, n_expert, k, 4, "split Q8_0", &n_dispatches));
        // Shared x: 1, 2 and 4 chunks; per slot: 1, 3 and 9; 3 pieces each.
        EXPECT_EQ(n_dispatches, (1 + 2 + 4 + 1 + 3 + 9) * 3);
        // F16 rows of 97 (194 bytes: half the rows start off a 4-byte boundary), 7 experts of 9 rows.
        const HostExperts hf = make_experts(DType::F16, 97, 9, 7, 5);
        worst = std::max(worst, check_mul_mat_id(*small, hf, 97, 9, 7, 2, 6, "split F16"));
    }
    {
        // An expert larger than a binding.
        const HostExperts big = make_experts(DType::F32, 64, 17, 2, 7);
        EXPECT_THROW(vk::upload_experts(*small, big.tensor), yiti::Error);
    }
    {
        // moe_combine: 5 tokens of 3 x 97 (1164 bytes): 3 tokens per dispatch; with 2 x 1000
        // floats (8000 bytes) a token's outputs do not fit: an Error, nothing recorded.
        const int64_t n_tok = 5, n = 97;
        const int k = 3;
        Rng rng(9);
        const std::vector<float> y = rng.vec((size_t)(n_tok * k * n)), w = rng.vec((size_t)(n_tok * k));
        std::vector<double> ref((size_t)(n_tok * n), 0.0);
        for (int64_t t = 0; t < n_tok; ++t)
            for (int j = 0; j < k; ++j)
                for (int64_t i = 0; i < n; ++i)
                    ref[t * n + i] += (double)w[t * k + j] * y[(t * k + j) * n + i];
        vk::Buffer by = to_device(*small, y), bw = to_device(*small, w),
                   bo = small->alloc(n_tok * n * 4, "out");
        vk::Sequence seq(*small);
        vk::moe_combine(seq, by.view(), bw.view(), n_tok, k, n, bo.view(), false);
        EXPECT_EQ(seq.n_dispatches(), 2u);
        seq.run();
        const double e = nmse(from_device(*small, bo, ref.size()), ref);
        EXPECT_LE(e, kCombineNmse);
        worst = std::max(worst, e);
        vk::Buffer big_y = small->alloc(2 * 1000 * 4, "y"), big_out = small->alloc(1000 * 4, "out");
        vk::Sequence seq2(*small);
        try {
            vk::moe_combine(seq2, big_y.view(), bw.view(), 1, 2, 1000, big_out.view(), false);
            FAIL() << "no error for a token's outputs larger than a binding";
        } catch (const yiti::Error& err) {
            EXPECT_NE(std::string(err.what()).find("does not fit one binding"), std::string::npos)
                << err.what();
        }
        EXPECT_TRUE(seq2.empty());
    }
    {
        // The router through a 1 KiB range: rows of 64 logits (256 bytes), 3 per dispatch.
        auto tiny = limited_context(index_, 1024, 65536);
        const vk::RouteParams rp{true, 6, true, 2.5f, 8, 3};
        Rng rng(10);
        const std::vector<float> bias = rng.vec(64, 0.1f);
        const std::vector<float> logits = clean_logits(rng, 10, 64, rp, bias.data());
        worst = std::max(worst, check_route(*tiny, rp, 64, 10, logits, &bias, "split route"));
    }
    printf("[ nmse     ] split bindings: worst %.3g\n", worst);
    EXPECT_EQ(small->device_bytes_in_use(), 0u);
}

// ------------------------------------------------------------------ the routed FFN

// router product -> route -> mul_mat_id(gate), mul_mat_id(up) -> silu_mul -> mul_mat_id(down, per
// slot) -> moe_combine, one sequence, against model::moe_ffn on the CPU in exact mode.
TEST_F(VulkanMoe, FfnMatchesModelMoeFfn) {
    const RouteConfig configs[] = {
        {"mixtral-like", {false, 2, true, 1.0f, 0, 0}, 8, false},
        {"deepseek-like", {true, 4, true, 2.5f, 4, 2}, 16, true},
    };
    const int64_t n_embd = 256, n_ff = 96;
    yiti::runtime::Runtime::Options ro;
    ro.n_threads = 2;
    ro.exact = true;
    yiti::runtime::Runtime rt(ro);
    double worst = 0;
    for (const RouteConfig& c : configs) {
        const int n_expert = c.n_expert, k = c.rp.k;
        const HostExperts gate = make_experts(DType::Q4_K, n_embd, n_ff, n_expert, 21),
                          up = make_experts(DType::Q6_K, n_embd, n_ff, n_expert, 22),
                          down = make_experts(DType::Q8_0, n_ff, n_embd, n_expert, 23);
        Rng rng(24);
        std::vector<float> inp = rng.vec((size_t)(n_embd * n_expert), 0.25f);  // router [n_embd, n_expert]
        const std::vector<float> bias = rng.vec((size_t)n_expert, 0.1f);
        const int64_t ne_inp[2] = {n_embd, n_expert}, ne_bias[1] = {n_expert};
        const yiti::Tensor t_inp = yiti::make_tensor_view("ffn_gate_inp", DType::F32, ne_inp, 2, inp.data());
        const yiti::Tensor t_bias =
            yiti::make_tensor_view("exp_probs_b", DType::F32, ne_bias, 1, bias.data());
        vk::Context& ctx = *ctx_;
        const vk::Matrix w_inp = vk::upload_matrix(ctx, t_inp);
        const vk::Experts w_gate = vk::upload_experts(ctx, gate.tensor),
                          w_up = vk::upload_experts(ctx, up.tensor),
                          w_down = vk::upload_experts(ctx, down.tensor);
        const vk::Buffer bb = to_device(ctx, bias);
        for (int64_t n_tok : {1, 5}) {
            // x rows whose logits (in double) come near no tie.
            std::vector<float> x((size_t)(n_tok * n_embd));
            for (int64_t t = 0; t < n_tok; ++t) {
                std::vector<float> l((size_t)n_expert);
                do {
                    for (int64_t i = 0; i < n_embd; ++i) x[t * n_embd + i] = rng.next();
                    for (int e = 0; e < n_expert; ++e) {
                        double s = 0;
                        for (int64_t i = 0; i < n_embd; ++i)
                            s += (double)inp[e * n_embd + i] * x[t * n_embd + i];
                        l[e] = (float)s;
                    }
                } while (near_tie(l.data(), n_expert, c.rp, c.bias ? bias.data() : nullptr));
            }
            // The CPU.
            yiti::model::MoeWeights mw;
            mw.gate_inp = &t_inp;
            mw.gate_exps = &gate.tensor;
            mw.up_exps = &up.tensor;
            mw.down_exps = &down.tensor;
            yiti::runtime::RouterParams rpc;
            rpc.sigmoid = c.rp.sigmoid;
            rpc.k = k;
            rpc.selection_bias = c.bias ? &t_bias : nullptr;
            rpc.renorm = c.rp.renorm;
            rpc.scale = c.rp.scale;
            rpc.n_groups = c.rp.n_groups;
            rpc.n_groups_used = c.rp.n_groups_used;
            rt.begin_pass();
            yiti::runtime::Act xa = rt.cpu().alloc(n_tok * n_embd);
            memcpy(xa.host, x.data(), x.size() * 4);
            const yiti::runtime::Act oa = yiti::model::moe_ffn(rt, mw, rpc, xa, n_tok);
            const std::vector<float> ref(oa.host, oa.host + n_tok * n_embd);
            rt.end_pass();

            // The device.
            vk::Buffer bx = to_device(ctx, x);
            vk::Buffer bl = ctx.alloc(n_tok * n_expert * 4, "logits"), bi = ctx.alloc(n_tok * k * 4, "ids"),
                       bw = ctx.alloc(n_tok * k * 4, "weights"), bg = ctx.alloc(n_tok * k * n_ff * 4, "gate"),
                       bu = ctx.alloc(n_tok * k * n_ff * 4, "up"),
                       by = ctx.alloc(n_tok * k * n_embd * 4, "y"), bo = ctx.alloc(n_tok * n_embd * 4, "out");
            vk::Sequence seq(ctx);
            vk::mul_mat(seq, w_inp, bx.view(), n_tok, bl.view());
            const vk::BufferView bias_view = bb.view();
            vk::route(seq, c.rp, bl.view(), c.bias ? &bias_view : nullptr, n_tok, n_expert, bi.view(),
                      bw.view());
            vk::mul_mat_id(seq, w_gate, bx.view(), false, bi.view(), n_tok, k, bg.view());
            vk::mul_mat_id(seq, w_up, bx.view(), false, bi.view(), n_tok, k, bu.view());
            vk::silu_mul(seq, bg.view(), bu.view(), n_tok * k * n_ff, bg.view());
            vk::mul_mat_id(seq, w_down, bg.view(), true, bi.view(), n_tok, k, by.view());
            vk::moe_combine(seq, by.view(), bw.view(), n_tok, k, n_embd, bo.view(), false);
            std::vector<float> got((size_t)(n_tok * n_embd));
            seq.download(bo.view(), got.data(), got.size() * 4);
            const uint64_t syncs0 = ctx.stats().syncs;
            seq.run();
            EXPECT_EQ(ctx.stats().syncs, syncs0 + 1);  // no host read-back of the ids
            const double e = nmse(got, to_double(ref));
            EXPECT_LE(e, kFfnNmse) << c.name << " n_tok " << n_tok;
            worst = std::max(worst, e);
        }
    }
    printf("[ nmse     ] routed FFN vs model::moe_ffn: worst %.3g (bound %.0e)\n", worst, kFfnNmse);
}

#else  // YITI_VULKAN

TEST(VulkanMoe, NotBuilt) {
    GTEST_SKIP() << "this build has no Vulkan backend (configure with libvulkan-dev and glslc)";
}

#endif  // YITI_VULKAN
