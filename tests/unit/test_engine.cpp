// The serving engine: continuous batching gives each request exactly what it gets alone; prefix
// reuse, cancellation, queueing when the cache is full, and request validation.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>

#include "core/error.h"
#include "engine/engine.h"
#include "engine/session.h"

using namespace yiti;

namespace {

const std::string k_model = std::string(YITI_SHARED_DIR) + "/models/stories260K.gguf";

std::shared_ptr<model::Model> stories() {
    static std::shared_ptr<model::Model> m = model::Model::load(k_model);
    return m;
}

struct Result {
    std::vector<int32_t> tokens;
    engine::FinishReason finish = engine::FinishReason::None;
    int64_t n_cached = 0;
};

// Submits a greedy request and returns a future of its tokens.
std::future<Result> submit(engine::Engine& e, std::vector<int32_t> prompt, int64_t max_tokens) {
    auto prom = std::make_shared<std::promise<Result>>();
    auto res = std::make_shared<Result>();
    engine::GenerateRequest r;
    r.prompt = std::move(prompt);
    r.sampling.temperature = 0;
    r.max_tokens = max_tokens;
    r.eog_tokens = {2};
    e.submit(r, [prom, res](const engine::TokenEvent& ev) {
        if (ev.token >= 0) res->tokens.push_back(ev.token);
        if (ev.finish != engine::FinishReason::None) {
            res->finish = ev.finish;
            res->n_cached = ev.n_cached;
            prom->set_value(*res);
        }
        return true;
    });
    return prom->get_future();
}

// Greedy generation with the single-sequence session: the reference for each request.
std::vector<int32_t> alone(const std::vector<int32_t>& prompt, int64_t max_tokens) {
    engine::SessionOptions so;
    so.n_threads = 2;
    engine::Session s(stories(), so);
    std::vector<float> logits = s.eval(prompt);
    std::vector<int32_t> out;
    for (int64_t i = 0; i < max_tokens; ++i) {
        int32_t t = (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
        out.push_back(t);
        if (t == 2) break;
        logits = s.eval({t});
    }
    return out;
}

std::vector<int32_t> prompt_n(int k, int len) {
    std::vector<int32_t> p = {1};
    for (int i = 1; i < len; ++i) p.push_back(3 + (i * 37 + k * 101) % 500);
    return p;
}

}  // namespace

TEST(Engine, BatchedEqualsAlone) {
    engine::EngineOptions eo;
    eo.n_threads = 2;
    eo.n_parallel = 8;
    eo.n_batch = 24;  // prompts are split into chunks that share passes with decode tokens
    engine::Engine e(stories(), eo);
    std::vector<std::vector<int32_t>> prompts;
    for (int k = 0; k < 8; ++k) prompts.push_back(prompt_n(k, 5 + 9 * k));
    std::vector<std::future<Result>> fs;
    for (auto& p : prompts) fs.push_back(submit(e, p, 24));
    for (size_t k = 0; k < prompts.size(); ++k) {
        Result r = fs[k].get();
        EXPECT_EQ(r.tokens, alone(prompts[k], 24)) << "request " << k;
        EXPECT_TRUE(r.finish == engine::FinishReason::Length || r.finish == engine::FinishReason::Stop);
    }
    auto st = e.stats();
    EXPECT_EQ(st.requests_finished, 8);
    EXPECT_GT(st.generated_tokens_total, 8);
}

TEST(Engine, PrefixReuse) {
    engine::EngineOptions eo;
    eo.n_threads = 2;
    eo.n_parallel = 2;
    engine::Engine e(stories(), eo);
    auto p = prompt_n(3, 100);
    Result a = submit(e, p, 16).get();
    Result b = submit(e, p, 16).get();
    EXPECT_EQ(a.n_cached, 0);
    EXPECT_EQ(b.n_cached, 96);  // three full blocks of 32; the last token is always computed
    EXPECT_EQ(a.tokens, b.tokens);
    EXPECT_EQ(a.tokens, alone(p, 16));
    // A continuation of the first conversation reuses its prompt and answer.
    auto p2 = p;
    p2.insert(p2.end(), a.tokens.begin(), a.tokens.end());
    p2.push_back(42);
    Result c = submit(e, p2, 8).get();
    EXPECT_GE(c.n_cached, 96);
    EXPECT_EQ(c.tokens, alone(p2, 8));
}

// A callback that returns false (the client went away) cancels at once: no further events, and
// its cache blocks and slot are free for the next request.
TEST(Engine, CallbackCancelFreesSlot) {
    engine::EngineOptions eo;
    eo.n_threads = 2;
    eo.n_parallel = 1;
    eo.prefix_cache = false;
    engine::Engine e(stories(), eo);
    std::atomic<int> n{0}, after{0};
    engine::GenerateRequest r;
    r.prompt = prompt_n(1, 10);
    r.max_tokens = 100;
    r.stop_at_eog = false;
    e.submit(r, [&](const engine::TokenEvent&) {
        if (n >= 5) ++after;
        return ++n < 5;  // the client goes away after 5 tokens
    });
    Result next = submit(e, prompt_n(2, 8), 4).get();  // runs only once the slot is free
    EXPECT_EQ(next.tokens.size(), 4u);
    EXPECT_EQ(n.load(), 5);
    EXPECT_EQ(after.load(), 0);
    auto st = e.stats();
    EXPECT_EQ(st.requests_cancelled, 1);
    EXPECT_EQ(st.kv_tokens_used, 0);
}

// Engine::cancel ends a running request with a final Cancelled event.
TEST(Engine, CancelById) {
    engine::EngineOptions eo;
    eo.n_threads = 2;
    eo.n_parallel = 1;
    engine::Engine e(stories(), eo);
    std::promise<engine::FinishReason> done;
    std::promise<void> started;
    std::atomic<int> n{0};
    engine::GenerateRequest r;
    r.prompt = prompt_n(1, 10);
    r.max_tokens = 100;
    r.stop_at_eog = false;
    uint64_t id = e.submit(r, [&](const engine::TokenEvent& ev) {
        if (ev.finish != engine::FinishReason::None) done.set_value(ev.finish);
        else if (++n == 1) started.set_value();
        return true;
    });
    started.get_future().wait();
    e.cancel(id);
    EXPECT_EQ(done.get_future().get(), engine::FinishReason::Cancelled);
    EXPECT_LT(n.load(), 100);
}

TEST(Engine, QueuesWhenCacheIsFull) {
    engine::EngineOptions eo;
    eo.n_threads = 2;
    eo.n_parallel = 4;
    eo.n_ctx = 128;  // room for about one request at a time
    eo.n_ctx_per_seq = 128;
    engine::Engine e(stories(), eo);
    std::vector<std::future<Result>> fs;
    std::vector<std::vector<int32_t>> prompts;
    for (int k = 0; k < 4; ++k) {
        prompts.push_back(prompt_n(k, 60));
        fs.push_back(submit(e, prompts.back(), 40));
    }
    for (int k = 0; k < 4; ++k) EXPECT_EQ(fs[(size_t)k].get().tokens, alone(prompts[(size_t)k], 40)) << k;
}

TEST(Engine, RejectsImpossibleRequests) {
    engine::EngineOptions eo;
    eo.n_threads = 1;
    engine::Engine e(stories(), eo);
    auto ok = [](const engine::TokenEvent&) { return true; };
    engine::GenerateRequest r;
    EXPECT_THROW(e.submit(r, ok), Error);  // empty prompt
    r.prompt = std::vector<int32_t>((size_t)e.n_ctx_per_seq(), 5);
    EXPECT_THROW(e.submit(r, ok), Error);  // longer than the context
    r.prompt = {1, 99999};
    EXPECT_THROW(e.submit(r, ok), Error);  // token out of range
    r.prompt = {1, 5};
    r.sampling.top_p = 2;
    EXPECT_THROW(e.submit(r, ok), Error);  // sampling parameter out of range
}
