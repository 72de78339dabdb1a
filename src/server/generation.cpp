#include "server/generation.h"

#include <algorithm>

#include "core/error.h"
#include "server/stop_matcher.h"
#include "tokenizer/reasoning.h"

namespace yiti::server {

struct Generation::Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<ChoiceDelta> q;
    std::atomic<bool> cancelled{false};
    std::string cancel_reason;  // under mu
    size_t n_final = 0;         // final deltas queued
};

// Per choice; touched only by the engine thread's callbacks (after start()).
struct Generation::Choice {
    int index = 0;
    ChoiceSpec spec;
    std::unique_ptr<StreamDecoder> dec;
    StopMatcher stop;
    std::unique_ptr<ReasoningSplitter> think;
    size_t decoded = 0;  // bytes the decoder produced
    std::deque<TokenLogprob> pending_lp;  // tokens whose text is not out yet
    bool done = false;
    bool first_token_seen = false;
    Generation::clock::time_point t_first, t_last;
    int64_t n_tokens = 0;  // token events seen
};

namespace {

void emit_text(Generation::Choice& ch, const std::string& raw, ChoiceDelta& d) {
    if (raw.empty()) return;
    if (ch.spec.split_reasoning) {
        auto out = ch.think->push(raw);
        d.reasoning += out.reasoning;
        d.content += out.content;
    } else {
        d.content += raw;
    }
}

// Releases the logprobs of tokens whose text has (at least partly) gone out.
void release_logprobs(Generation::Choice& ch, ChoiceDelta& d, bool all) {
    const size_t rel = ch.stop.released();
    while (!ch.pending_lp.empty()) {
        auto& t = ch.pending_lp.front();
        if (!all && !(t.text_offset < rel)) break;
        d.logprobs.push_back(std::move(t));
        ch.pending_lp.pop_front();
    }
}

}  // namespace

Generation::Generation(engine::Engine& eng, const Tokenizer& tok, clock::time_point t_start)
    : eng_(eng), tok_(tok), t_start_(t_start), sh_(std::make_shared<Shared>()) {}

Generation::~Generation() {
    if (!finished()) cancel("dropped");
}

void Generation::start(const std::vector<ChoiceSpec>& specs) {
    const clock::time_point t0 = t_start_;
    for (size_t i = 0; i < specs.size(); ++i) {
        auto ch = std::make_shared<Choice>();
        ch->index = (int)i;
        ch->spec = specs[i];
        ch->dec = std::make_unique<StreamDecoder>(tok_, false, ch->spec.continuation);
        ch->stop = StopMatcher(ch->spec.stop);
        ch->think = std::make_unique<ReasoningSplitter>(ch->spec.start_in_reasoning);
        choices_.push_back(ch);
    }
    for (size_t i = 0; i < specs.size(); ++i) {
        std::shared_ptr<Choice> ch = choices_[i];
        std::shared_ptr<Shared> sh = sh_;
        const Tokenizer* tok = &tok_;
        engine::GenerateRequest req;
        req.prompt = ch->spec.prompt;
        req.sampling = ch->spec.sampling;
        req.max_tokens = ch->spec.max_tokens;
        req.stop_at_eog = !ch->spec.ignore_eos;
        req.eog_tokens = tok_.eog_ids();
        req.top_logprobs = ch->spec.want_logprobs ? ch->spec.top_logprobs : 0;
        req.constraint = ch->spec.constraint;
        auto cb = [ch, sh, tok, t0](const engine::TokenEvent& ev) -> bool {
            if (ch->done) return false;
            ChoiceDelta d;
            d.index = ch->index;
            auto finalize = [&](const std::string& reason) {
                // Whatever the decoder and the stop matcher still hold, then the splitter's rest.
                if (reason != "stop" || !ch->stop.matched()) {
                    std::string tail = ch->dec->flush();
                    ch->decoded += tail.size();
                    std::string out = ch->stop.push(tail);
                    if (!ch->stop.matched()) out += ch->stop.flush();
                    emit_text(*ch, out, d);
                }
                if (ch->spec.split_reasoning) {
                    auto rest = ch->think->finish();
                    d.reasoning += rest.reasoning;
                    d.content += rest.content;
                }
                release_logprobs(*ch, d, /*all=*/!ch->stop.matched());
                ch->pending_lp.clear();
                d.finished = true;
                d.finish_reason = reason;
                d.n_prompt = (int64_t)ch->spec.prompt.size();
                d.n_generated = ch->n_tokens;
                if (ch->first_token_seen) {
                    d.ttft_s = std::chrono::duration<double>(ch->t_first - t0).count();
                    if (ch->n_tokens > 1)
                        d.tpot_s = std::chrono::duration<double>(ch->t_last - ch->t_first).count() / (double)(ch->n_tokens - 1);
                }
                ch->done = true;
            };
            bool keep = true;
            if (ev.token >= 0) {
                const auto now = Generation::clock::now();
                if (!ch->first_token_seen) {
                    ch->first_token_seen = true;
                    ch->t_first = now;
                }
                ch->t_last = now;
                ch->n_tokens++;
                d.n_cached = ev.n_cached;
                const bool hidden_eog = ev.is_eog && !ch->spec.ignore_eos;
                if (!hidden_eog) {
                    std::string txt = ch->dec->push(ev.token);
                    if (ch->spec.want_logprobs) {
                        TokenLogprob lp;
                        lp.id = ev.token;
                        lp.logprob = ev.logprob;
                        lp.top = ev.top;
                        lp.text_offset = ch->decoded;
                        ch->pending_lp.push_back(std::move(lp));
                    }
                    ch->decoded += txt.size();
                    emit_text(*ch, ch->stop.push(txt), d);
                    release_logprobs(*ch, d, false);
                }
                if (ch->stop.matched()) {
                    finalize("stop");
                    keep = false;
                } else if (sh->cancelled) {
                    finalize("cancelled");
                    keep = false;
                }
            } else {
                std::string reason = "cancelled";
                switch (ev.finish) {
                    case engine::FinishReason::Stop: reason = "stop"; break;
                    case engine::FinishReason::Length: reason = "length"; break;
                    case engine::FinishReason::Error: reason = "error"; break;
                    default: break;
                }
                d.error = ev.error;
                finalize(reason);
                d.n_cached = ev.n_cached;
                keep = false;
            }
            if (d.finished || !d.content.empty() || !d.reasoning.empty() || !d.logprobs.empty()) {
                std::lock_guard<std::mutex> lk(sh->mu);
                if (d.finished) sh->n_final++;
                sh->q.push_back(std::move(d));
                sh->cv.notify_all();
            }
            return keep;
        };
        try {
            ids_.push_back(eng_.submit(std::move(req), cb));
        } catch (...) {
            // The ones already running go; the caller reports the error.
            for (uint64_t id : ids_) eng_.cancel(id);
            sh_->cancelled = true;
            choices_.resize(ids_.size());
            throw;
        }
    }
}

bool Generation::wait(std::vector<ChoiceDelta>& out, int timeout_ms) {
    std::unique_lock<std::mutex> lk(sh_->mu);
    if (sh_->q.empty()) sh_->cv.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return !sh_->q.empty(); });
    if (sh_->q.empty()) return false;
    while (!sh_->q.empty()) {
        if (sh_->q.front().finished) n_final_seen_++;
        out.push_back(std::move(sh_->q.front()));
        sh_->q.pop_front();
    }
    return true;
}

bool Generation::finished() const { return n_final_seen_ >= choices_.size(); }

void Generation::cancel(const std::string& reason) {
    {
        std::lock_guard<std::mutex> lk(sh_->mu);
        if (sh_->cancel_reason.empty()) sh_->cancel_reason = reason;
    }
    sh_->cancelled = true;
    for (uint64_t id : ids_) eng_.cancel(id);
}

std::string Generation::cancel_reason() const {
    std::lock_guard<std::mutex> lk(sh_->mu);
    return sh_->cancel_reason;
}

}  // namespace yiti::server
