// The serving engine: many requests at once over one model. One scheduler thread runs, each step,
// the decode tokens of every active sequence together with chunks of waiting prompts in one batched
// forward pass (continuous batching, chunked prefill), over a paged KV cache with prefix reuse.
// Callers talk to it through submit() and callbacks; they never touch the model or the cache.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/constraint.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "runtime/backend.h"
#include "sample/sampler.h"

namespace yiti::engine {

struct EngineOptions {
    int n_threads = 0;          // 0: all cores
    bool exact = false;
    int64_t n_ctx = 0;          // KV cache capacity in tokens, shared by all sequences (0: 4 x min(train ctx, 4096))
    int64_t n_ctx_per_seq = 0;  // longest sequence (prompt + generation); 0: min(train ctx, n_ctx)
    int n_parallel = 4;         // sequences decoded together at most
    int64_t n_batch = 256;      // tokens per forward pass at most (decode tokens + prompt chunks)
    bool prefix_cache = true;   // reuse cached KV blocks of earlier requests with the same prompt prefix
};

enum class FinishReason { None, Length, Stop, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "length", "stop", "cancelled", "error"

struct GenerateRequest {
    std::vector<int32_t> prompt;
    sample::SamplerParams sampling;
    int64_t max_tokens = 256;        // generation stops after this many tokens (finish: length)
    bool stop_at_eog = true;         // stop at the model's end-of-generation tokens (finish: stop)
    std::vector<int32_t> eog_tokens; // which ids end generation
    int top_logprobs = 0;            // report this many alternatives per token (0: none)
    // Grammar-constrained decoding (structured outputs), or null: each step samples only among
    // the tokens the grammar allows; end-of-generation ids only where it may end, and generation
    // stops (finish: stop) once the document is complete. Each sequence gets its own matcher state.
    std::shared_ptr<const ConstraintSpec> constraint;
};

struct TokenEvent {
    int32_t token = -1;                   // -1 for a final event without a token
    float logprob = 0;
    std::vector<sample::TokenProb> top;   // when requested
    bool is_eog = false;                  // the token ends generation (callers usually don't print it)
    FinishReason finish = FinishReason::None;  // set on the last event of a request
    std::string error;                    // when finish == Error
    int64_t n_prompt = 0;                 // prompt tokens (on the last event)
    int64_t n_cached = 0;                 // prompt tokens whose KV came from the prefix cache
    int64_t n_generated = 0;              // tokens generated so far
};

// Called on the engine thread for each token; must be quick (hand the event to another thread).
// Return false to cancel the request (e.g. the client went away): its sequence is freed at once and
// the callback is not called again (no final event follows).
using TokenCallback = std::function<bool(const TokenEvent&)>;

struct EngineStats {
    int64_t requests_total = 0;       // accepted
    int64_t requests_finished = 0;
    int64_t requests_cancelled = 0;
    int64_t requests_errored = 0;
    int64_t prompt_tokens_total = 0;  // processed (not counting cached)
    int64_t cached_tokens_total = 0;
    int64_t generated_tokens_total = 0;
    int64_t steps_total = 0;
    int queue_depth = 0;              // waiting for a slot or for cache space
    int active = 0;                   // sequences being processed
    int64_t kv_tokens_capacity = 0;
    int64_t kv_tokens_used = 0;       // slots held by sequences and the prefix cache
    double ttft_seconds_sum = 0;      // time to first token, summed over requests
    int64_t ttft_count = 0;
    double tpot_seconds_sum = 0;      // time per output token after the first, summed
    int64_t tpot_count = 0;
};

class Engine {
public:
    Engine(std::shared_ptr<model::Model> model, const EngineOptions& opt);
    ~Engine();  // stops the scheduler; pending requests finish with Cancelled

    // Queues a request; returns its id. Throws Error for a request that can never run (empty
    // prompt, a prompt that leaves no room to generate within n_ctx_per_seq, token ids out of
    // range, sampling parameters out of range). Generation that reaches n_ctx_per_seq ends with
    // Length.
    uint64_t submit(GenerateRequest req, TokenCallback cb);
    void cancel(uint64_t id);          // finishes with Cancelled as soon as possible
    EngineStats stats() const;
    const EngineOptions& options() const { return opt_; }
    const model::Model& model() const { return *model_; }
    int64_t n_ctx_per_seq() const { return opt_.n_ctx_per_seq; }
    void shutdown();                   // ends every request (Cancelled) and the scheduler thread

private:
    struct Sequence;
    void loop();
    bool step();  // one scheduler step; false when there was nothing to do
    void finish(Sequence& s, FinishReason r, const std::string& err = "");
    bool admit(Sequence& s);  // gives a waiting request its cache blocks (with prefix reuse)
    void release_seq(Sequence& s);

    std::shared_ptr<model::Model> model_;
    EngineOptions opt_;
    std::unique_ptr<runtime::Runtime> rt_;
    std::unique_ptr<kv::KVCache> cache_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::unique_ptr<Sequence>> waiting_;
    std::vector<std::unique_ptr<Sequence>> active_;
    std::vector<uint64_t> cancel_requests_;
    uint64_t next_id_ = 1;
    bool stop_ = false;
    EngineStats stats_;
    std::thread thread_;

    // Prefix cache: full blocks of earlier prompts, keyed by the hash of all tokens up to the
    // block's end; the cache holds one reference on each block it lists.
    struct CachedBlock {
        int32_t block;
        uint64_t last_use;
    };
    std::unordered_map<uint64_t, CachedBlock> prefix_;
    uint64_t use_clock_ = 0;
    uint64_t admit_counter_ = 0;
    bool evict_one_prefix_block();
};

}  // namespace yiti::engine
