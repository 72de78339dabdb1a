#include "tokenizer/reasoning.h"

#include <utility>

namespace yiti {

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// The length of the longest proper prefix of `tag` that `s` ends with.
size_t partial_suffix(std::string_view s, std::string_view tag) {
    size_t max = std::min(s.size(), tag.empty() ? 0 : tag.size() - 1);
    for (size_t k = max; k > 0; --k)
        if (s.compare(s.size() - k, k, tag.substr(0, k)) == 0) return k;
    return 0;
}

}  // namespace

ReasoningSplitter::ReasoningSplitter(bool start_in_reasoning, std::string open, std::string close, bool trim)
    : open_(std::move(open)),
      close_(std::move(close)),
      trim_(trim),
      reasoning_(start_in_reasoning),
      saw_reasoning_(start_in_reasoning),
      reasoning_start_(start_in_reasoning) {}

void ReasoningSplitter::emit_reasoning(Delta& d, std::string_view s, bool block_end) {
    if (!trim_) {
        d.reasoning += s;
        for (char c : s)
            if (!is_ws(c)) reasoning_start_ = false;
        return;
    }
    std::string t = std::move(ws_hold_);
    ws_hold_.clear();
    t += s;
    if (reasoning_start_) {
        size_t b = 0;
        while (b < t.size() && is_ws(t[b])) ++b;
        t.erase(0, b);
        if (t.empty()) return;
        reasoning_start_ = false;
    }
    size_t e = t.size();
    while (e > 0 && is_ws(t[e - 1])) --e;
    if (!block_end) ws_hold_ = t.substr(e);  // kept until we know whether the block ends here
    d.reasoning.append(t, 0, e);
}

void ReasoningSplitter::process(Delta& d, bool final) {
    for (;;) {
        if (reasoning_) {
            if (reasoning_start_ && !open_.empty()) {
                // Models sometimes write the opening tag although the prompt already opened the
                // block: drop a repeated opening tag at the start of the reasoning.
                size_t i = 0;
                while (i < buf_.size() && is_ws(buf_[i])) ++i;
                std::string_view rest = std::string_view(buf_).substr(i);
                if (rest.compare(0, open_.size(), open_) == 0) {
                    if (!trim_) d.reasoning.append(buf_, 0, i);
                    buf_.erase(0, i + open_.size());
                    continue;
                }
                if (!final && rest.size() < open_.size() && open_.compare(0, rest.size(), rest) == 0) return;
            }
            size_t p = close_.empty() ? std::string::npos : buf_.find(close_);
            if (p != std::string::npos) {
                emit_reasoning(d, std::string_view(buf_).substr(0, p), true);
                buf_.erase(0, p + close_.size());
                reasoning_ = false;
                segment_start_ = true;
                after_close_ = true;
                continue;
            }
            size_t keep = final ? 0 : partial_suffix(buf_, close_);
            emit_reasoning(d, std::string_view(buf_).substr(0, buf_.size() - keep), final);
            buf_.erase(0, buf_.size() - keep);
            if (final) ws_hold_.clear();
            return;
        }
        if (!segment_start_) {
            d.content += buf_;
            buf_.clear();
            return;
        }
        size_t i = 0;
        while (i < buf_.size() && is_ws(buf_[i])) ++i;
        if (i == buf_.size()) {  // only whitespace so far: undecided
            if (final) {
                if (!(trim_ && after_close_)) d.content += buf_;
                buf_.clear();
            }
            return;
        }
        std::string_view rest = std::string_view(buf_).substr(i);
        if (!open_.empty() && rest.compare(0, open_.size(), open_) == 0) {
            if (!trim_) d.content.append(buf_, 0, i);
            buf_.erase(0, i + open_.size());
            reasoning_ = true;
            saw_reasoning_ = true;
            reasoning_start_ = true;
            ws_hold_.clear();
            continue;
        }
        if (!final && rest.size() < open_.size() && open_.compare(0, rest.size(), rest) == 0) return;  // maybe a tag
        segment_start_ = false;
        if (trim_ && after_close_) buf_.erase(0, i);  // the answer's leading whitespace
    }
}

ReasoningSplitter::Delta ReasoningSplitter::push(std::string_view text) {
    Delta d;
    buf_ += text;
    process(d, false);
    return d;
}

ReasoningSplitter::Delta ReasoningSplitter::finish() {
    Delta d;
    process(d, true);
    return d;
}

ReasoningSplitter::Delta ReasoningSplitter::split(std::string_view text, bool start_in_reasoning, std::string open,
                                                  std::string close, bool trim) {
    ReasoningSplitter s(start_in_reasoning, std::move(open), std::move(close), trim);
    Delta d = s.push(text);
    Delta f = s.finish();
    d.reasoning += f.reasoning;
    d.content += f.content;
    return d;
}

bool prompt_ends_in_reasoning(std::string_view prompt, std::string_view open, std::string_view close) {
    size_t o = prompt.rfind(open);
    if (o == std::string_view::npos) return false;
    size_t c = prompt.rfind(close);
    return c == std::string_view::npos || c < o;
}

}  // namespace yiti
