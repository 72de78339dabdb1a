#include "core/error.h"

#include <cstdarg>
#include <vector>

namespace yiti {

std::string strprintf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    std::string s;
    if (n > 0) {
        s.resize((size_t)n + 1);
        vsnprintf(s.data(), s.size(), fmt, ap2);
        s.resize((size_t)n);
    }
    va_end(ap2);
    return s;
}

void assert_fail(const char* expr, const char* file, int line) {
    fprintf(stderr, "yiti: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    fflush(stderr);
    abort();
}

}  // namespace yiti
