#include "sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "core/error.h"
#include "sample/grammar.h"

namespace yiti::sample {

std::string validate(const SamplerParams& p) {
    if (!(p.temperature >= 0 && p.temperature <= 100)) return strprintf("temperature %g is out of range [0, 100]", p.temperature);
    if (!(p.top_p > 0 && p.top_p <= 1)) return strprintf("top_p %g is out of range (0, 1]", p.top_p);
    if (!(p.min_p >= 0 && p.min_p <= 1)) return strprintf("min_p %g is out of range [0, 1]", p.min_p);
    if (p.top_k < 0) return strprintf("top_k %d is negative", p.top_k);
    if (!(p.repeat_penalty > 0 && p.repeat_penalty <= 10)) return strprintf("repeat_penalty %g is out of range (0, 10]", p.repeat_penalty);
    if (!(p.presence_penalty >= -2 && p.presence_penalty <= 2)) return strprintf("presence_penalty %g is out of range [-2, 2]", p.presence_penalty);
    if (!(p.frequency_penalty >= -2 && p.frequency_penalty <= 2)) return strprintf("frequency_penalty %g is out of range [-2, 2]", p.frequency_penalty);
    return "";
}

Sampler::Sampler(const SamplerParams& p, int64_t n_vocab) : p_(p), n_vocab_(n_vocab) {
    uint64_t seed = p.seed;
    if (seed == 0xFFFFFFFFFFFFFFFFull) seed = std::random_device{}() ^ ((uint64_t)std::random_device{}() << 32);
    rng_.seed(seed);
    work_.resize((size_t)n_vocab);
}

void Sampler::penalize(const std::vector<int32_t>& history) {
    // Penalties over the recent history.
    const bool any_penalty = p_.repeat_penalty != 1.0f || p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f;
    if (any_penalty && !history.empty()) {
        size_t n = history.size();
        size_t start = (p_.repeat_last_n < 0 || (size_t)p_.repeat_last_n >= n) ? 0 : n - (size_t)p_.repeat_last_n;
        std::unordered_map<int32_t, int> counts;
        for (size_t i = start; i < n; ++i)
            if (history[i] >= 0 && history[i] < n_vocab_) ++counts[history[i]];
        for (auto [tok, cnt] : counts) {
            float& l = work_[(size_t)tok];
            if (p_.repeat_penalty != 1.0f) l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
            l -= (float)cnt * p_.frequency_penalty + p_.presence_penalty;
        }
    }
}

// Greedy or sampled among the candidates (cand == nullptr: the whole vocabulary).
int32_t Sampler::pick(const int32_t* cand, size_t n_cand) {
    if (p_.temperature <= 0.0f) {
        if (!cand) return (int32_t)(std::max_element(work_.begin(), work_.end()) - work_.begin());
        int32_t best = cand[0];  // ascending ids: the first maximum is the lowest id, as above
        for (size_t i = 1; i < n_cand; ++i)
            if (work_[(size_t)cand[i]] > work_[(size_t)best]) best = cand[i];
        return best;
    }
    // Candidates sorted by logit, cut by top-k, then softmax at the temperature, min-p, top-p.
    std::vector<int32_t> idx;
    if (cand) {
        idx.assign(cand, cand + n_cand);
    } else {
        idx.resize((size_t)n_vocab_);
        std::iota(idx.begin(), idx.end(), 0);
    }
    const size_t n = idx.size();
    size_t k = (p_.top_k > 0 && (size_t)p_.top_k < n) ? (size_t)p_.top_k : n;
    auto cmp = [&](int32_t a, int32_t b) {
        return work_[(size_t)a] > work_[(size_t)b] || (work_[(size_t)a] == work_[(size_t)b] && a < b);
    };
    std::partial_sort(idx.begin(), idx.begin() + (ptrdiff_t)k, idx.end(), cmp);
    idx.resize(k);
    std::vector<double> pr(k);
    const double top = work_[(size_t)idx[0]];
    double z = 0;
    for (size_t i = 0; i < k; ++i) z += pr[i] = std::exp((work_[(size_t)idx[i]] - top) / p_.temperature);
    for (auto& v : pr) v /= z;
    size_t keep = k;
    if (p_.min_p > 0)
        for (size_t i = 1; i < keep; ++i)
            if (pr[i] < p_.min_p * pr[0]) { keep = i; break; }
    if (p_.top_p < 1.0f) {
        double cum = 0;
        for (size_t i = 0; i < keep; ++i) {
            cum += pr[i];
            if (cum >= p_.top_p) { keep = i + 1; break; }
        }
    }
    double total = 0;
    for (size_t i = 0; i < keep; ++i) total += pr[i];
    std::uniform_real_distribution<double> U(0.0, total);
    double r = U(rng_), acc = 0;
    int32_t chosen = idx[keep - 1];
    for (size_t i = 0; i < keep; ++i) {
        acc += pr[i];
        if (r < acc) { chosen = idx[i]; break; }
    }
    return chosen;
}

int32_t Sampler::sample(const float* logits, const std::vector<int32_t>& history, const TokenMask* allowed) {
    masked_ = false;
    if (allowed) {
        // The allowed ids, in ascending order.
        cand_.clear();
        const size_t nw = std::min(allowed->bits.size(), ((size_t)n_vocab_ + 63) / 64);
        for (size_t w = 0; w < nw; ++w)
            for (uint64_t b = allowed->bits[w]; b; b &= b - 1) {
                const size_t id = w * 64 + (size_t)__builtin_ctzll(b);
                if (id < (size_t)n_vocab_) cand_.push_back((int32_t)id);
            }
        masked_ = !cand_.empty();
    }
    int32_t chosen;
    if (!masked_) {
        std::copy(logits, logits + n_vocab_, work_.begin());
        penalize(history);
        // Log-sum-exp for log-probabilities (at temperature 1, as the OpenAI API reports them).
        float mx = *std::max_element(work_.begin(), work_.end());
        double sum = 0;
        for (float l : work_) sum += std::exp((double)l - mx);
        last_lse_ = mx + (float)std::log(sum);
        chosen = pick(nullptr, 0);
    } else {
        // Masked-out tokens get -inf (they stay -inf through the penalties); only the allowed
        // ones are looked at after that.
        std::fill(work_.begin(), work_.end(), -std::numeric_limits<float>::infinity());
        for (int32_t id : cand_) work_[(size_t)id] = logits[id];
        penalize(history);
        float mx = -std::numeric_limits<float>::infinity();
        for (int32_t id : cand_) mx = std::max(mx, work_[(size_t)id]);
        if (!std::isfinite(mx)) {  // every allowed logit is -inf or NaN: keep them all equally likely
            for (int32_t id : cand_) work_[(size_t)id] = 0;
            mx = 0;
        }
        double sum = 0;
        for (int32_t id : cand_) sum += std::exp((double)work_[(size_t)id] - mx);
        last_lse_ = mx + (float)std::log(sum);
        chosen = pick(cand_.data(), cand_.size());
    }
    last_logprob_ = work_[(size_t)chosen] - last_lse_;
    return chosen;
}

std::vector<TokenProb> Sampler::last_top(int n) const {
    n = std::clamp(n, 0, (int)n_vocab_);
    std::vector<int32_t> idx((size_t)n_vocab_);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), [&](int32_t a, int32_t b) {
        return work_[(size_t)a] > work_[(size_t)b] || (work_[(size_t)a] == work_[(size_t)b] && a < b);
    });
    std::vector<TokenProb> out;
    for (int i = 0; i < n; ++i) {
        const float l = work_[(size_t)idx[(size_t)i]];
        if (masked_ && !(l > -std::numeric_limits<float>::infinity())) break;  // masked out
        out.push_back({idx[(size_t)i], l - last_lse_});
    }
    return out;
}

}  // namespace yiti::sample
