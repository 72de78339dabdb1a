// Expert selection for Mixture-of-Experts layers, on the host (the CPU backend's MoE and the
// reference the GPU's routing kernel is tested against).
#pragma once
#include <cstdint>
#include <vector>

namespace yiti::cpu {

// Scores by softmax or sigmoid of the router logits; an optional per-expert bias added for
// choosing only (DeepSeek-V3's exp_probs_b); optional group-limited choice (keep the n_groups_used
// groups whose two best biased scores sum highest, ties to the lower group); top-k by biased score
// (ties to the lower expert); the chosen unbiased scores optionally renormalized to sum 1, then
// multiplied by scale.
struct RouteParams {
    bool sigmoid = false;
    int k = 0;
    const float* selection_bias = nullptr;  // [n_expert] or null
    bool renorm = false;
    float scale = 1.0f;
    int n_groups = 0;
    int n_groups_used = 0;
};

struct ExpertChoice {
    std::vector<int32_t> ids;    // [n_tok][k]
    std::vector<float> weights;  // [n_tok][k]
    int k = 0;
};

// From router logits [n_tok][n_expert].
ExpertChoice route_experts(const float* logits, int64_t n_tok, int n_expert, const RouteParams& rp);

}  // namespace yiti::cpu
