#include "cpu/route.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "core/error.h"
#include "cpu/ops.h"

namespace yiti::cpu {

ExpertChoice route_experts(const float* logits, int64_t n_tok, int n_expert, const RouteParams& rp) {
    const int k = rp.k;
    YITI_ASSERT(k > 0 && k <= n_expert);
    ExpertChoice c;
    c.k = k;
    c.ids.resize((size_t)(n_tok * k));
    c.weights.resize((size_t)(n_tok * k));
    std::vector<float> prob((size_t)n_expert), sel((size_t)n_expert);
    std::vector<int> idx((size_t)n_expert);
    const bool grouped = rp.n_groups > 1 && rp.n_groups_used > 0 && rp.n_groups_used < rp.n_groups &&
                         n_expert % rp.n_groups == 0;
    for (int64_t t = 0; t < n_tok; ++t) {
        const float* l = logits + t * n_expert;
        if (!rp.sigmoid) {
            std::copy(l, l + n_expert, prob.begin());
            softmax(prob.data(), n_expert);
        } else {
            for (int e = 0; e < n_expert; ++e) prob[(size_t)e] = 1.0f / (1.0f + std::exp(-l[e]));
        }
        for (int e = 0; e < n_expert; ++e) sel[(size_t)e] = prob[(size_t)e] + (rp.selection_bias ? rp.selection_bias[e] : 0.0f);
        if (grouped) {
            const int per = n_expert / rp.n_groups;
            std::vector<std::pair<float, int>> gscore;
            for (int g = 0; g < rp.n_groups; ++g) {
                std::vector<float> v(sel.begin() + g * per, sel.begin() + (g + 1) * per);
                std::partial_sort(v.begin(), v.begin() + std::min(2, per), v.end(), std::greater<float>());
                gscore.emplace_back(per >= 2 ? v[0] + v[1] : v[0], g);
            }
            std::sort(gscore.begin(), gscore.end(),
                      [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
            for (int r = rp.n_groups_used; r < rp.n_groups; ++r)
                for (int e = 0; e < per; ++e) sel[(size_t)(gscore[(size_t)r].second * per + e)] = -INFINITY;
        }
        std::iota(idx.begin(), idx.end(), 0);
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
            return sel[(size_t)a] > sel[(size_t)b] || (sel[(size_t)a] == sel[(size_t)b] && a < b);
        });
        float sum = 0;
        for (int j = 0; j < k; ++j) sum += prob[(size_t)idx[(size_t)j]];
        for (int j = 0; j < k; ++j) {
            const float w = prob[(size_t)idx[(size_t)j]];
            c.ids[(size_t)(t * k + j)] = idx[(size_t)j];
            c.weights[(size_t)(t * k + j)] = (rp.renorm ? w / sum : w) * rp.scale;
        }
    }
    return c;
}

}  // namespace yiti::cpu
