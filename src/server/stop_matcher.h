// Stop strings over streamed text: a stop string may span several tokens, is never emitted, and
// text that might be the start of one is held back until it is known not to be.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace yiti::server {

class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops = {});

    // Appends generated text; returns the text that is now safe to emit. Once a stop string is
    // found, the text before it is returned, matched() turns true and later pushes return "".
    std::string push(std::string_view text);
    // At the end of generation: whatever is still held back (nothing after a match).
    std::string flush();

    bool matched() const { return matched_; }
    const std::string& matched_stop() const { return matched_stop_; }
    size_t held() const { return held_.size(); }
    size_t released() const { return released_; }  // bytes emitted so far

private:
    std::vector<std::string> stops_;
    std::string held_;
    bool matched_ = false;
    std::string matched_stop_;
    size_t released_ = 0;
};

}  // namespace yiti::server
