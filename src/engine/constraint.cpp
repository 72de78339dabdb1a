#include "engine/constraint.h"

#include <algorithm>

namespace yiti::engine {

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool all_ws(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_ws); }

constexpr int kMaxWsAfterClose = 4;  // whitespace-only tokens between "</think>" and the document

}  // namespace

std::shared_ptr<const ConstraintVocab> ConstraintVocab::build(std::shared_ptr<const sample::TokenVocab> v,
                                                              std::string open_tag, std::string close_tag) {
    auto cv = std::make_shared<ConstraintVocab>();
    const int32_t n = v->size();
    cv->open_tag = std::move(open_tag);
    cv->close_tag = std::move(close_tag);
    cv->reasoning.reset(n);
    cv->ws.reset(n);
    for (int32_t id = 0; id < n; ++id) {
        const std::string& p = v->piece(id);
        if (all_ws(p)) cv->ws.set(id);
        if (cv->open_token < 0 && !cv->open_tag.empty() && p == cv->open_tag) cv->open_token = id;
        // A token that closes the block and goes on with text: that text would have to start the
        // document; refuse such tokens (the model closes the block with a token of its own).
        bool ok = true;
        if (!cv->close_tag.empty()) {
            size_t at = p.find(cv->close_tag);
            if (at != std::string::npos) {
                std::string_view rest = std::string_view(p).substr(at + cv->close_tag.size());
                ok = std::all_of(rest.begin(), rest.end(), is_ws);
            }
        }
        if (ok) cv->reasoning.set(id);
    }
    for (int32_t id : v->eog())
        if (id >= 0 && id < n) cv->reasoning.bits[size_t(id) >> 6] &= ~(uint64_t(1) << (id & 63));
    cv->vocab = std::move(v);
    return cv;
}

Constraint::Constraint(std::shared_ptr<const ConstraintSpec> spec) : spec_(std::move(spec)), m_(spec_->cache) {
    st_ = m_.initial();
    switch (spec_->start) {
        case ConstraintSpec::Start::Now: phase_ = Phase::Grammar; break;
        case ConstraintSpec::Start::AfterReasoning: phase_ = Phase::Reasoning; break;
        case ConstraintSpec::Start::OptionalReasoning:
            phase_ = spec_->cv && spec_->cv->open_token >= 0 ? Phase::Optional : Phase::Grammar;
            break;
    }
}

const sample::TokenMask& Constraint::mask() {
    const ConstraintVocab* cv = spec_->cv.get();
    switch (phase_) {
        case Phase::Reasoning: return cv->reasoning;
        case Phase::Optional:
            m_.fill_mask(st_, mask_);
            mask_.set(cv->open_token);
            return mask_;
        case Phase::AfterClose:
            m_.fill_mask(st_, mask_);
            if (n_ws_after_close_ < kMaxWsAfterClose)
                for (size_t i = 0; i < mask_.bits.size() && i < cv->ws.bits.size(); ++i) mask_.bits[i] |= cv->ws.bits[i];
            return mask_;
        case Phase::Grammar: break;
    }
    if (failed_) {
        mask_.reset(m_.vocab().size());
    } else {
        m_.fill_mask(st_, mask_);
    }
    bool any = false;
    for (uint64_t w : mask_.bits)
        if (w) {
            any = true;
            break;
        }
    if (!any)
        for (int32_t id : m_.vocab().eog()) mask_.set(id);
    return mask_;
}

void Constraint::enter_grammar(std::string_view first) {
    phase_ = Phase::Grammar;
    complete_cache_ = -1;
    if (!first.empty() && !m_.advance(st_, first)) failed_ = true;
}

void Constraint::accept(int32_t token) {
    const sample::TokenVocab& v = m_.vocab();
    const std::string empty;
    const std::string& piece = token >= 0 && token < v.size() ? v.piece(token) : empty;
    switch (phase_) {
        case Phase::Optional:
            if (token == spec_->cv->open_token) {
                phase_ = Phase::Reasoning;
                return;
            }
            phase_ = Phase::Grammar;
            break;
        case Phase::Reasoning: {
            const std::string& close = spec_->cv->close_tag;
            tail_ += piece;
            size_t at = tail_.find(close);
            if (at == std::string::npos) {
                if (tail_.size() >= close.size()) tail_.erase(0, tail_.size() - (close.size() - 1));
                return;
            }
            std::string rest = tail_.substr(at + close.size());
            tail_.clear();
            size_t b = 0;
            while (b < rest.size() && is_ws(rest[b])) ++b;
            phase_ = Phase::AfterClose;
            n_ws_after_close_ = 0;
            if (b < rest.size()) enter_grammar(std::string_view(rest).substr(b));
            return;
        }
        case Phase::AfterClose:
            if (all_ws(piece) && n_ws_after_close_ < kMaxWsAfterClose) {
                n_ws_after_close_++;
                return;
            }
            phase_ = Phase::Grammar;
            break;
        case Phase::Grammar: break;
    }
    complete_cache_ = -1;
    if (failed_) return;
    if (!m_.advance_token(st_, token)) failed_ = true;
}

bool Constraint::complete() {
    if (phase_ != Phase::Grammar) return false;
    if (failed_) return true;
    if (complete_cache_ >= 0) return complete_cache_ != 0;
    bool done = m_.can_end(st_);
    // Finished when nothing but whitespace (or the end) may follow.
    for (int b = 0; done && b < 256; ++b) {
        const char c = char(b);
        if (is_ws(c)) continue;
        if (m_.accepts(st_, std::string_view(&c, 1))) done = false;
    }
    complete_cache_ = done ? 1 : 0;
    return done;
}

}  // namespace yiti::engine
