// Errors at boundaries (files, requests, flags) are exceptions carrying one clear message;
// invariants inside the engine are asserts.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace yiti {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

std::string strprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

[[noreturn]] void assert_fail(const char* expr, const char* file, int line);

}  // namespace yiti

#define YITI_ASSERT(x)                                                     \
    do {                                                                   \
        if (!(x)) ::yiti::assert_fail(#x, __FILE__, __LINE__);             \
    } while (0)
