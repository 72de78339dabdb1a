// Expert routing: softmax and sigmoid scoring, the selection-only bias, group-limited choice,
// renormalization and scaling (values worked out by hand below).
#include <gtest/gtest.h>

#include <cmath>

#include "cpu/route.h"

using namespace yiti::cpu;

namespace {
float logit(float p) { return std::log(p / (1 - p)); }
}  // namespace

TEST(Router, SoftmaxTopKRenormalized) {
    const float l[4] = {1, 2, 3, 4};
    RouteParams rp;
    rp.sigmoid = false;
    rp.k = 2;
    rp.renorm = true;
    ExpertChoice c = route_experts(l, 1, 4, rp);
    ASSERT_EQ(c.ids, (std::vector<int32_t>{3, 2}));
    // softmax then renormalized over {3, 2}: e^4 / (e^4 + e^3) and e^3 / (e^4 + e^3)
    const float e = std::exp(1.0f);
    EXPECT_NEAR(c.weights[0], e / (e + 1), 1e-6);
    EXPECT_NEAR(c.weights[1], 1 / (e + 1), 1e-6);
    rp.renorm = false;
    c = route_experts(l, 1, 4, rp);
    const float z = std::exp(1.f) + std::exp(2.f) + std::exp(3.f) + std::exp(4.f);
    EXPECT_NEAR(c.weights[0], std::exp(4.f) / z, 1e-6);
}

TEST(Router, SigmoidBiasChoosesButDoesNotWeigh) {
    const float l[4] = {0, 0, 0, 0};  // every score 0.5
    const float bias[4] = {0, 1, 0, 2};
    RouteParams rp;
    rp.sigmoid = true;
    rp.k = 2;
    rp.selection_bias = bias;
    rp.scale = 2.5f;
    ExpertChoice c = route_experts(l, 1, 4, rp);
    ASSERT_EQ(c.ids, (std::vector<int32_t>{3, 1}));
    EXPECT_NEAR(c.weights[0], 0.5f * 2.5f, 1e-6);  // the unbiased score, scaled
    rp.renorm = true;
    c = route_experts(l, 1, 4, rp);
    EXPECT_NEAR(c.weights[0], 0.5f * 2.5f, 1e-6);  // 0.5 / (0.5 + 0.5) * 2.5
    EXPECT_NEAR(c.weights[1], 0.5f * 2.5f, 1e-6);
}

TEST(Router, GroupLimited) {
    // 4 groups of 2. Group scores (sum of the two best): 0.91, 0.2, 1.2, 1.1 -> keep groups 2 and 3.
    const float p[8] = {0.9f, 0.01f, 0.1f, 0.1f, 0.6f, 0.6f, 0.55f, 0.55f};
    float l[8];
    for (int i = 0; i < 8; ++i) l[i] = logit(p[i]);
    RouteParams rp;
    rp.sigmoid = true;
    rp.k = 2;
    ExpertChoice ungrouped = route_experts(l, 1, 8, rp);
    EXPECT_EQ(ungrouped.ids, (std::vector<int32_t>{0, 4}));
    rp.n_groups = 4;
    rp.n_groups_used = 2;
    ExpertChoice c = route_experts(l, 1, 8, rp);
    EXPECT_EQ(c.ids, (std::vector<int32_t>{4, 5}));
    EXPECT_NEAR(c.weights[0], 0.6f, 1e-5);
    rp.k = 3;
    c = route_experts(l, 1, 8, rp);
    EXPECT_EQ(c.ids, (std::vector<int32_t>{4, 5, 6}));
}
