// Sampling: penalties, then greedy or temperature with top-k / top-p / min-p, from a seeded RNG.
#pragma once
#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

namespace yiti::sample {

struct TokenMask;  // sample/grammar.h

struct SamplerParams {
    float temperature = 0.8f;  // <= 0: greedy
    int top_k = 40;            // <= 0: all
    float top_p = 0.95f;       // >= 1: off
    float min_p = 0.05f;       // <= 0: off
    float repeat_penalty = 1.0f;  // 1: off (divides positive logits, multiplies negative ones)
    int repeat_last_n = 64;       // tokens of history the penalties look at (-1: all)
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    uint64_t seed = 0xFFFFFFFFFFFFFFFFull;  // that value: random seed
};

// Checks ranges; returns an empty string when valid, else a message naming the parameter.
std::string validate(const SamplerParams& p);

struct TokenProb {
    int32_t id;
    float logprob;  // log-softmax of the (penalized) logits at temperature 1
};

class Sampler {
public:
    Sampler(const SamplerParams& p, int64_t n_vocab);

    // Picks the next token from one row of logits; `history` is the sequence so far (prompt and
    // generated) and feeds the penalties. With `allowed` (grammar-constrained decoding), only the
    // tokens it sets can be chosen, greedy or sampled: the others are masked out before the
    // penalties and top-k / top-p / min-p, and the log-probabilities are those of the masked
    // distribution. Ids at or past the mask's size are masked out; an empty mask is ignored.
    int32_t sample(const float* logits, const std::vector<int32_t>& history, const TokenMask* allowed = nullptr);

    // Log-probabilities of the chosen token and the n most likely ones, from the last sample() call.
    float last_logprob() const { return last_logprob_; }
    std::vector<TokenProb> last_top(int n) const;

    const SamplerParams& params() const { return p_; }

private:
    SamplerParams p_;
    int64_t n_vocab_;
    std::mt19937_64 rng_;
    std::vector<float> work_;       // penalized logits
    std::vector<int32_t> cand_;     // with a mask: the allowed ids (ascending)
    bool masked_ = false;           // the last sample() had a mask
    void penalize(const std::vector<int32_t>& history);
    int32_t pick(const int32_t* cand, size_t n_cand);
    float last_logprob_ = 0;
    float last_lse_ = 0;            // log-sum-exp of work_
};

}  // namespace yiti::sample
