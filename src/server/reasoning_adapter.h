// Splits a streamed answer into its reasoning ("<think> ... </think>") and its content, for
// reasoning models (DeepSeek-R1 style). The opening tag counts only at the very start of the
// answer (after white space), or is implied when the prompt already opened it; tags split across
// pushes are held back until they are known.
#pragma once
#include <string>
#include <string_view>

namespace yiti::server {

class ReasoningAdapter {
public:
    struct Out {
        std::string reasoning;
        std::string content;
    };
    explicit ReasoningAdapter(bool start_in_reasoning = false)
        : state_(start_in_reasoning ? State::Reasoning : State::Start) {}

    Out push(std::string_view text) {
        Out o;
        buf_.append(text);
        for (;;) {
            if (state_ == State::Start) {
                size_t i = buf_.find_first_not_of(" \t\r\n");
                if (i == std::string::npos) return o;  // only white space so far
                std::string_view rest = std::string_view(buf_).substr(i);
                if (rest.size() < open_.size() && open_.compare(0, rest.size(), rest) == 0) return o;  // maybe the tag
                if (rest.substr(0, open_.size()) == open_) {
                    buf_.erase(0, i + open_.size());
                    state_ = State::Reasoning;
                    continue;
                }
                state_ = State::Content;
                continue;
            }
            if (state_ == State::Reasoning) {
                size_t p = buf_.find(close_);
                if (p != std::string::npos) {
                    o.reasoning += buf_.substr(0, p);
                    buf_.erase(0, p + close_.size());
                    state_ = State::AfterReasoning;
                    continue;
                }
                const size_t keep = partial_tail(buf_, close_);
                o.reasoning += buf_.substr(0, buf_.size() - keep);
                buf_.erase(0, buf_.size() - keep);
                return o;
            }
            if (state_ == State::AfterReasoning) {
                // The blank lines between the reasoning and the answer are not part of either.
                size_t i = buf_.find_first_not_of(" \t\r\n");
                if (i == std::string::npos) {
                    buf_.clear();
                    return o;
                }
                buf_.erase(0, i);
                state_ = State::Content;
                continue;
            }
            o.content += buf_;
            buf_.clear();
            return o;
        }
    }

    Out flush() {
        Out o;
        if (state_ == State::Reasoning)
            o.reasoning = buf_;
        else if (state_ != State::AfterReasoning)
            o.content = buf_;
        buf_.clear();
        return o;
    }

    bool in_reasoning() const { return state_ == State::Reasoning; }

private:
    enum class State { Start, Reasoning, AfterReasoning, Content };
    static size_t partial_tail(const std::string& s, const std::string& tag) {
        for (size_t k = std::min(tag.size() - 1, s.size()); k > 0; --k)
            if (s.compare(s.size() - k, k, tag, 0, k) == 0) return k;
        return 0;
    }
    State state_;
    std::string buf_;
    std::string open_ = "<think>", close_ = "</think>";
};

}  // namespace yiti::server
