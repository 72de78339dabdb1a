#include "server/stop_matcher.h"

#include <algorithm>

namespace yiti::server {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
    for (auto& s : stops)
        if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopMatcher::push(std::string_view text) {
    if (matched_) return "";
    held_.append(text);
    // The earliest complete stop string wins (the longest one when several start there).
    size_t best = std::string::npos;
    const std::string* best_stop = nullptr;
    for (auto& s : stops_) {
        size_t p = held_.find(s);
        if (p == std::string::npos) continue;
        if (p < best || (p == best && s.size() > best_stop->size())) {
            best = p;
            best_stop = &s;
        }
    }
    std::string out;
    if (best_stop) {
        matched_ = true;
        matched_stop_ = *best_stop;
        out = held_.substr(0, best);
        held_.clear();
        released_ += out.size();
        return out;
    }
    // Hold back the longest tail that is a proper prefix of some stop string.
    size_t keep = 0;
    for (auto& s : stops_) {
        const size_t max_k = std::min(s.size() - 1, held_.size());
        for (size_t k = max_k; k > keep; --k)
            if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
                keep = k;
                break;
            }
    }
    out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    released_ += out.size();
    return out;
}

std::string StopMatcher::flush() {
    if (matched_) return "";
    std::string out;
    out.swap(held_);
    released_ += out.size();
    return out;
}

}  // namespace yiti::server
