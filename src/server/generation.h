// The generations of one API request (one per choice), run by the engine: each token the engine
// reports goes through the text pipeline on the engine thread (UTF-8-safe decoding, stop strings,
// the reasoning split) and comes out as deltas that the HTTP thread waits for. A stop string ends
// the sequence at once (the callback returns false); so does cancel() (client gone, shutdown).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "tokenizer/tokenizer.h"

namespace yiti::server {

struct TokenLogprob {
    int32_t id = -1;
    float logprob = 0;
    std::vector<sample::TokenProb> top;
    size_t text_offset = 0;  // where its text starts in the choice's generated text (bytes)
};

// Output of one choice since the last delta.
struct ChoiceDelta {
    int index = 0;
    std::string content;
    std::string reasoning;
    std::vector<TokenLogprob> logprobs;
    bool finished = false;
    std::string finish_reason;  // when finished: "stop", "length", "cancelled" or "error"
    std::string error;          // when finish_reason == "error"
    int64_t n_prompt = 0;       // on the final delta
    int64_t n_cached = 0;
    int64_t n_generated = 0;    // tokens sampled (the end-of-generation token included)
    double ttft_s = -1;         // on the final delta: time to first token, mean time per later token
    double tpot_s = -1;
};

struct ChoiceSpec {
    std::vector<int32_t> prompt;
    sample::SamplerParams sampling;
    int64_t max_tokens = 1;
    bool ignore_eos = false;
    std::vector<std::string> stop;
    int top_logprobs = 0;         // alternatives per token (with want_logprobs)
    bool want_logprobs = false;
    bool split_reasoning = false; // separate <think> ... </think> into reasoning
    bool start_in_reasoning = false;
    bool continuation = false;    // text continues the prompt: keep the first token's leading space
    std::shared_ptr<const engine::ConstraintSpec> constraint;  // structured output (null: free text)
};

class Generation {
public:
    using clock = std::chrono::steady_clock;
    Generation(engine::Engine& eng, const Tokenizer& tok, clock::time_point t_start);
    ~Generation();  // cancels whatever is still running
    Generation(const Generation&) = delete;
    Generation& operator=(const Generation&) = delete;

    // Submits every choice (index = position). Throws yiti::Error when the engine refuses one
    // (the ones already submitted are cancelled).
    void start(const std::vector<ChoiceSpec>& specs);
    // Moves the deltas that arrived into `out`, waiting up to timeout_ms for the first one.
    // Returns false when nothing arrived.
    bool wait(std::vector<ChoiceDelta>& out, int timeout_ms);
    bool finished() const;  // every choice has delivered its final delta (to wait())
    // Ends every choice ("cancelled"); `reason` tells the caller later why (e.g. "shutdown").
    void cancel(const std::string& reason);
    std::string cancel_reason() const;
    size_t n_choices() const { return choices_.size(); }

    struct Choice;
    struct Shared;

private:
    engine::Engine& eng_;
    const Tokenizer& tok_;
    clock::time_point t_start_;
    std::shared_ptr<Shared> sh_;
    std::vector<std::shared_ptr<Choice>> choices_;
    std::vector<uint64_t> ids_;
    size_t n_final_seen_ = 0;
};

}  // namespace yiti::server
