// Small text helpers shared across the project.
#pragma once
#include <string>
#include <string_view>

namespace yiti {

// s with ASCII letters lower-cased (header names, hosts, type names: no locale).
inline std::string ascii_lower(std::string_view s) {
    std::string r(s);
    for (char& c : r)
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    return r;
}

}  // namespace yiti
