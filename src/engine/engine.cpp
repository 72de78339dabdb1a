#include "engine/engine.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace yiti::engine {

using clock_type = std::chrono::steady_clock;

const char* finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::None: return "none";
        case FinishReason::Length: return "length";
        case FinishReason::Stop: return "stop";
        case FinishReason::Cancelled: return "cancelled";
        case FinishReason::Error: return "error";
    }
    return "?";
}

struct Engine::Sequence {
    uint64_t id = 0;
    GenerateRequest req;
    TokenCallback cb;
    std::unique_ptr<sample::Sampler> sampler;
    std::unique_ptr<Constraint> constraint;  // when the request has one
    std::vector<int32_t> tokens;   // prompt, then generated tokens
    int64_t n_prompt = 0;          // original prompt length
    int64_t n_cached = 0;          // prompt tokens taken from the prefix cache
    int64_t n_generated = 0;
    int64_t n_registered_blocks = 0;  // leading full blocks already offered to the prefix cache
    kv::SeqKV kv;                  // kv.n_tokens = tokens whose KV is computed
    uint64_t admit_order = 0;
    clock_type::time_point t_submit, t_last_token;
    bool cancelled = false;
};

namespace {
uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}
// Key of a full block: hash of every token from the start of the sequence to the block's end.
uint64_t block_key(const std::vector<int32_t>& tokens, int64_t block, int bs, uint64_t parent) {
    uint64_t h = mix(parent, (uint64_t)block + 1);
    for (int64_t i = block * bs; i < (block + 1) * bs; ++i) h = mix(h, (uint32_t)tokens[(size_t)i]);
    return h;
}
}  // namespace

Engine::Engine(std::shared_ptr<model::Model> model, const EngineOptions& opt) : model_(std::move(model)), opt_(opt) {
    const auto& hp = model_->hparams();
    const int64_t train = std::min<int64_t>(hp.n_ctx_train, 4096);
    if (opt_.n_parallel < 1) opt_.n_parallel = 1;
    if (opt_.n_ctx <= 0) opt_.n_ctx = train * std::min(4, opt_.n_parallel);
    if (opt_.n_ctx_per_seq <= 0) opt_.n_ctx_per_seq = std::min<int64_t>(hp.n_ctx_train, opt_.n_ctx);
    opt_.n_ctx_per_seq = std::min(opt_.n_ctx_per_seq, opt_.n_ctx);
    if (opt_.n_batch < 1) opt_.n_batch = 1;
    if (opt_.n_batch < opt_.n_parallel) opt_.n_batch = opt_.n_parallel;
    runtime::Runtime::Options ro;
    ro.n_threads = opt_.n_threads;
    ro.exact = opt_.exact;
    rt_ = std::make_unique<runtime::Runtime>(ro);
    cache_ = model_->make_cache(
        model_->kv_layout(opt_.exact ? DType::F32 : model_->preferred_kv_type()),
        opt_.n_ctx + (int64_t)opt_.n_parallel * 32 /* partial last blocks */);
    stats_.kv_tokens_capacity = cache_->capacity_tokens();
    thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(); }

void Engine::shutdown() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stop_ && !thread_.joinable()) return;
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

uint64_t Engine::submit(GenerateRequest req, TokenCallback cb) {
    const int64_t V = model_->hparams().n_vocab;
    if (req.prompt.empty()) throw Error("the prompt is empty");
    for (int32_t t : req.prompt)
        if (t < 0 || t >= V) throw Error(strprintf("token id %d is out of range [0, %lld)", t, (long long)V));
    if (req.max_tokens < 1) throw Error(strprintf("max_tokens must be at least 1 (got %lld)", (long long)req.max_tokens));
    if ((int64_t)req.prompt.size() >= opt_.n_ctx_per_seq)
        throw Error(strprintf("the prompt has %zu tokens, more than the context allows (%lld)", req.prompt.size(),
                              (long long)opt_.n_ctx_per_seq - 1));
    std::string err = sample::validate(req.sampling);
    if (!err.empty()) throw Error(err);
    auto s = std::make_unique<Sequence>();
    s->req = std::move(req);
    s->cb = std::move(cb);
    s->sampler = std::make_unique<sample::Sampler>(s->req.sampling, V);
    if (s->req.constraint) {
        if (!s->req.constraint->cache || !s->req.constraint->cv)
            throw Error("the constraint has no grammar or vocabulary");
        if (s->req.constraint->cache->vocab()->size() > V)
            throw Error("the constraint's vocabulary is larger than the model's");
        s->constraint = std::make_unique<Constraint>(s->req.constraint);
    }
    s->tokens = s->req.prompt;
    s->n_prompt = (int64_t)s->tokens.size();
    s->t_submit = clock_type::now();
    uint64_t id;
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stop_) throw Error("the engine is shutting down");
        id = s->id = next_id_++;
        waiting_.push_back(std::move(s));
        stats_.requests_total++;
        stats_.queue_depth = (int)waiting_.size();
    }
    cv_.notify_all();
    return id;
}

void Engine::cancel(uint64_t id) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        cancel_requests_.push_back(id);
    }
    cv_.notify_all();
}

EngineStats Engine::stats() const {
    std::lock_guard<std::mutex> lk(mu_);
    return stats_;
}

void Engine::loop() {
    for (;;) {
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return stop_ || !waiting_.empty() || !active_.empty() || !cancel_requests_.empty(); });
            if (stop_) break;
        }
        try {
            if (!step()) {
                // Nothing could run (all waiting for space that frees only by cancellation): don't spin.
                std::unique_lock<std::mutex> lk(mu_);
                cv_.wait_for(lk, std::chrono::milliseconds(5));
            }
        } catch (const std::exception& e) {
            // A failed forward pass (out of memory included) fails the requests in it, never the
            // server: nothing may leave this thread, so failures while failing them are swallowed.
            for (auto& s : active_) {
                try {
                    finish(*s, FinishReason::Error, e.what());
                } catch (...) {
                    try {
                        release_seq(*s);
                    } catch (...) {
                    }
                }
            }
            active_.clear();
        }
    }
    // Shutdown: end everything still queued or running.
    std::deque<std::unique_ptr<Sequence>> waiting;
    {
        std::lock_guard<std::mutex> lk(mu_);
        waiting.swap(waiting_);
    }
    for (auto& s : active_) finish(*s, FinishReason::Cancelled);
    active_.clear();
    for (auto& s : waiting) finish(*s, FinishReason::Cancelled);
}

void Engine::finish(Sequence& s, FinishReason r, const std::string& err) {
    // Free the cache first, so that whoever the final event wakes sees the slot free.
    release_seq(s);
    {
        std::lock_guard<std::mutex> lk(mu_);
        stats_.requests_finished++;
        if (r == FinishReason::Cancelled) stats_.requests_cancelled++;
        if (r == FinishReason::Error) stats_.requests_errored++;
        stats_.kv_tokens_used = stats_.kv_tokens_capacity - cache_->free_tokens();
    }
    TokenEvent ev;
    ev.finish = r;
    ev.error = err;
    ev.n_prompt = s.n_prompt;
    ev.n_cached = s.n_cached;
    ev.n_generated = s.n_generated;
    if (s.cb) s.cb(ev);
    s.cb = nullptr;
}

void Engine::release_seq(Sequence& s) { cache_->release(s.kv); }

bool Engine::evict_one_prefix_block() {
    auto victim = prefix_.end();
    for (auto it = prefix_.begin(); it != prefix_.end(); ++it) {
        if (cache_->pool().refcount(it->second.block) != 1) continue;  // in use by a sequence
        if (victim == prefix_.end() || it->second.last_use < victim->second.last_use) victim = it;
    }
    if (victim == prefix_.end()) return false;
    cache_->pool().release(victim->second.block);
    prefix_.erase(victim);
    return true;
}

bool Engine::admit(Sequence& s) {
    const int bs = cache_->block_size();
    // Reuse full cached blocks of the prompt, keeping at least its last token to compute.
    if (opt_.prefix_cache && s.kv.blocks.empty()) {
        uint64_t key = 0;
        for (int64_t b = 0; (b + 1) * bs <= (int64_t)s.tokens.size() - 1; ++b) {
            key = block_key(s.tokens, b, bs, key);
            auto it = prefix_.find(key);
            if (it == prefix_.end()) break;
            it->second.last_use = ++use_clock_;
            cache_->pool().ref(it->second.block);
            s.kv.blocks.push_back(it->second.block);
        }
        s.kv.n_tokens = (int32_t)(s.kv.blocks.size() * bs);
        s.n_registered_blocks = (int64_t)s.kv.blocks.size();
        if (s.n_generated == 0 && s.n_cached == 0 && s.kv.n_tokens > 0) {
            s.n_cached = s.kv.n_tokens;
            std::lock_guard<std::mutex> lk(mu_);
            stats_.cached_tokens_total += s.n_cached;
        }
    }
    // Room for the rest of the prompt (and the first generated token).
    const int64_t need = (int64_t)s.tokens.size() + 1;
    while (!cache_->reserve(s.kv, need))
        if (!evict_one_prefix_block()) {
            cache_->release(s.kv);
            s.n_registered_blocks = 0;
            return false;
        }
    return true;
}

bool Engine::step() {
    // 1. Cancellations.
    std::vector<uint64_t> cancels;
    {
        std::lock_guard<std::mutex> lk(mu_);
        cancels.swap(cancel_requests_);
    }
    if (!cancels.empty()) {
        auto is_cancelled = [&](uint64_t id) { return std::find(cancels.begin(), cancels.end(), id) != cancels.end(); };
        for (auto& s : active_)
            if (is_cancelled(s->id)) s->cancelled = true;
        std::deque<std::unique_ptr<Sequence>> dropped;
        {
            std::lock_guard<std::mutex> lk(mu_);
            for (auto it = waiting_.begin(); it != waiting_.end();) {
                if (is_cancelled((*it)->id)) {
                    dropped.push_back(std::move(*it));
                    it = waiting_.erase(it);
                } else ++it;
            }
        }
        for (auto& s : dropped) finish(*s, FinishReason::Cancelled);
    }
    for (auto it = active_.begin(); it != active_.end();) {
        if ((*it)->cancelled) {
            finish(**it, FinishReason::Cancelled);
            it = active_.erase(it);
        } else ++it;
    }

    // 2. Admission, first come first served, while slots and cache space last.
    for (;;) {
        std::unique_ptr<Sequence> s;
        {
            std::lock_guard<std::mutex> lk(mu_);
            if (waiting_.empty() || (int)active_.size() >= opt_.n_parallel) break;
            s = std::move(waiting_.front());
            waiting_.pop_front();
        }
        if (!admit(*s)) {
            std::lock_guard<std::mutex> lk(mu_);
            waiting_.push_front(std::move(s));
            break;
        }
        s->admit_order = ++admit_counter_;
        active_.push_back(std::move(s));
    }
    if (active_.empty()) {
        std::lock_guard<std::mutex> lk(mu_);
        stats_.queue_depth = (int)waiting_.size();
        stats_.active = 0;
        return false;
    }

    // 3. Plan: every decoding sequence's next token, then prompt chunks within the token budget.
    // Each sequence needs cache slots for what it adds; when the pool runs dry, free prefix-cache
    // blocks, then preempt the most recently admitted sequence (it recomputes later).
    model::Batch batch;
    std::vector<Sequence*> in_batch;
    int64_t budget = opt_.n_batch;
    auto ensure_slots = [&](Sequence& s, int64_t n_total) {
        while (!cache_->reserve(s.kv, n_total)) {
            if (evict_one_prefix_block()) continue;
            // Preempt the newest other sequence that is not in this batch yet.
            Sequence* victim = nullptr;
            for (auto& o : active_)
                if (o.get() != &s && std::find(in_batch.begin(), in_batch.end(), o.get()) == in_batch.end() &&
                    (!victim || o->admit_order > victim->admit_order))
                    victim = o.get();
            if (!victim) return false;
            cache_->release(victim->kv);
            victim->n_registered_blocks = 0;
            auto it = std::find_if(active_.begin(), active_.end(), [&](auto& p) { return p.get() == victim; });
            std::unique_ptr<Sequence> v = std::move(*it);
            active_.erase(it);
            std::lock_guard<std::mutex> lk(mu_);
            waiting_.push_front(std::move(v));
        }
        return true;
    };
    // Decode tokens first (oldest first), then prefill.
    std::vector<Sequence*> order;
    for (auto& s : active_) order.push_back(s.get());
    std::sort(order.begin(), order.end(), [](Sequence* a, Sequence* b) { return a->admit_order < b->admit_order; });
    for (int pass = 0; pass < 2; ++pass) {
        for (Sequence* s : order) {
            if (std::find_if(active_.begin(), active_.end(), [&](auto& p) { return p.get() == s; }) == active_.end())
                continue;  // preempted
            const int64_t pending = (int64_t)s->tokens.size() - s->kv.n_tokens;
            const bool decoding = pending == 1 && s->n_generated > 0;
            if ((pass == 0) != decoding || pending <= 0 || budget <= 0) continue;
            const int64_t n = std::min(pending, budget);
            if (!ensure_slots(*s, s->kv.n_tokens + n)) continue;
            model::BatchSeq bsq;
            bsq.kv = &s->kv;
            bsq.first = (int64_t)batch.tokens.size();
            bsq.n = n;
            bsq.no_logits = s->kv.n_tokens + n < (int64_t)s->tokens.size();
            batch.tokens.insert(batch.tokens.end(), s->tokens.begin() + s->kv.n_tokens,
                                s->tokens.begin() + s->kv.n_tokens + n);
            batch.seqs.push_back(bsq);
            in_batch.push_back(s);
            budget -= n;
        }
    }
    if (batch.seqs.empty()) return false;

    // 4. Forward.
    const int64_t V = model_->hparams().n_vocab;
    std::vector<float> logits((size_t)(batch.n_outputs() * V));
    int64_t n_prompt_tokens = 0;
    for (size_t i = 0; i < in_batch.size(); ++i)
        if (in_batch[i]->n_generated == 0) n_prompt_tokens += batch.seqs[i].n;
    model_->forward(*rt_, *cache_, batch, logits.data());
    batch.advance();
    {
        std::lock_guard<std::mutex> lk(mu_);
        stats_.steps_total++;
        stats_.prompt_tokens_total += n_prompt_tokens;
        stats_.generated_tokens_total += batch.n_outputs();
    }

    // 5. Sample, report, finish.
    int64_t out_row = 0;
    std::vector<Sequence*> done;
    std::vector<FinishReason> done_reason;
    const auto now = clock_type::now();
    double ttft_sum = 0, tpot_sum = 0;
    int64_t ttft_n = 0, tpot_n = 0;
    for (size_t i = 0; i < in_batch.size(); ++i) {
        Sequence* s = in_batch[i];
        if (batch.seqs[i].no_logits) continue;
        const float* row = logits.data() + out_row * V;
        ++out_row;
        const sample::TokenMask* allowed = s->constraint ? &s->constraint->mask() : nullptr;
        const int32_t tok = s->sampler->sample(row, s->tokens, allowed);
        if (s->constraint) s->constraint->accept(tok);
        s->tokens.push_back(tok);
        s->n_generated++;
        if (s->n_generated == 1) {
            ttft_sum += std::chrono::duration<double>(now - s->t_submit).count();
            ttft_n++;
        } else {
            tpot_sum += std::chrono::duration<double>(now - s->t_last_token).count();
            tpot_n++;
        }
        s->t_last_token = now;
        TokenEvent ev;
        ev.token = tok;
        ev.logprob = s->sampler->last_logprob();
        if (s->req.top_logprobs > 0) ev.top = s->sampler->last_top(s->req.top_logprobs);
        ev.is_eog = std::find(s->req.eog_tokens.begin(), s->req.eog_tokens.end(), tok) != s->req.eog_tokens.end();
        ev.n_prompt = s->n_prompt;
        ev.n_cached = s->n_cached;
        ev.n_generated = s->n_generated;
        FinishReason fr = FinishReason::None;
        if (ev.is_eog && (s->req.stop_at_eog || s->constraint)) fr = FinishReason::Stop;
        else if (s->constraint && s->constraint->complete()) fr = FinishReason::Stop;
        else if (s->n_generated >= s->req.max_tokens || (int64_t)s->tokens.size() >= opt_.n_ctx_per_seq)
            fr = FinishReason::Length;
        const bool keep = s->cb ? s->cb(ev) : false;
        if (!keep) fr = FinishReason::Cancelled;
        if (fr != FinishReason::None) {
            done.push_back(s);
            done_reason.push_back(fr);
        }
    }

    // 6. Offer newly completed full blocks to the prefix cache (before finished sequences let go).
    if (opt_.prefix_cache) {
        const int bs = cache_->block_size();
        for (Sequence* s : in_batch) {
            const int64_t full = s->kv.n_tokens / bs;
            uint64_t key = 0;
            for (int64_t b = 0; b < full; ++b) {
                key = block_key(s->tokens, b, bs, key);
                if (b < s->n_registered_blocks) continue;
                auto it = prefix_.find(key);
                if (it == prefix_.end()) {
                    cache_->pool().ref(s->kv.blocks[(size_t)b]);
                    prefix_[key] = CachedBlock{s->kv.blocks[(size_t)b], ++use_clock_};
                }
            }
            s->n_registered_blocks = full;
        }
    }
    for (size_t i = 0; i < done.size(); ++i) {
        Sequence* s = done[i];
        const FinishReason fr = done_reason[i];
        auto it = std::find_if(active_.begin(), active_.end(), [&](auto& p) { return p.get() == s; });
        std::unique_ptr<Sequence> owned = std::move(*it);
        active_.erase(it);
        if (fr == FinishReason::Cancelled) s->cb = nullptr;  // the caller asked to stop; no more events
        finish(*owned, fr);
    }

    std::lock_guard<std::mutex> lk(mu_);
    stats_.ttft_seconds_sum += ttft_sum;
    stats_.ttft_count += ttft_n;
    stats_.tpot_seconds_sum += tpot_sum;
    stats_.tpot_count += tpot_n;
    stats_.queue_depth = (int)waiting_.size();
    stats_.active = (int)active_.size();
    stats_.kv_tokens_used = stats_.kv_tokens_capacity - cache_->free_tokens();
    return true;
}

}  // namespace yiti::engine
