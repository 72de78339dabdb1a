#include "tokenizer/tok_unicode.h"

#include <algorithm>

namespace yiti::tok {

namespace {

constexpr uint32_t kMaxCpt = 0x110000;

struct ByteMap {
    std::string to_unicode[256];
    int16_t from_cpt[0x144];  // code points 0..0x143 -> byte, -1 when unmapped

    ByteMap() {
        bool direct[256] = {};
        for (int b = 0x21; b <= 0x7E; ++b) direct[b] = true;
        for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
        for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
        std::fill(std::begin(from_cpt), std::end(from_cpt), int16_t(-1));
        uint32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            const uint32_t cpt = direct[b] ? uint32_t(b) : next++;
            append_utf8(to_unicode[b], cpt);
            from_cpt[cpt] = int16_t(b);
        }
    }
};

const ByteMap& byte_map() {
    static const ByteMap map;
    return map;
}

inline bool is_cont(uint8_t c) { return (c & 0xC0) == 0x80; }

}  // namespace

Category cpt_category(uint32_t cpt) {
    if (cpt >= kMaxCpt) return CAT_UNDEFINED;
    const uint32_t* begin = kCategoryRanges;
    const uint32_t* end = kCategoryRanges + kCategoryRangesCount;
    // the last range starting at or before cpt
    const uint32_t* it = std::upper_bound(begin, end, cpt, [](uint32_t c, uint32_t r) { return c < (r >> 3); });
    return it == begin ? CAT_UNDEFINED : Category(*(it - 1) & 7u);
}

bool cpt_is_whitespace(uint32_t cpt) {
    if (cpt <= 0x20) return cpt == 0x20 || (cpt >= 0x09 && cpt <= 0x0D);
    if (cpt < 0x85) return false;
    switch (cpt) {
        case 0x85:
        case 0xA0:
        case 0x1680:
        case 0x2028:
        case 0x2029:
        case 0x202F:
        case 0x205F:
        case 0x3000:
            return true;
        default:
            return cpt >= 0x2000 && cpt <= 0x200A;
    }
}

uint32_t cpt_tolower(uint32_t cpt) {
    if (cpt < 0x80) return (cpt >= 'A' && cpt <= 'Z') ? cpt + 32 : cpt;
    const LowerRun* begin = kLowerRuns;
    const LowerRun* end = kLowerRuns + kLowerRunsCount;
    const LowerRun* it =
        std::upper_bound(begin, end, cpt, [](uint32_t c, const LowerRun& r) { return c < r.first; });
    if (it == begin) return cpt;
    --it;
    if (cpt > it->last || (cpt - it->first) % uint32_t(it->step) != 0) return cpt;
    return uint32_t(int64_t(cpt) + it->delta);
}

uint32_t cpt_nfd_first(uint32_t cpt) {
    if (cpt < 0xC0) return cpt;
    const NfdRange* begin = kNfdRanges;
    const NfdRange* end = kNfdRanges + kNfdRangesCount;
    const NfdRange* it =
        std::upper_bound(begin, end, cpt, [](uint32_t c, const NfdRange& r) { return c < r.first; });
    if (it == begin) return cpt;
    --it;
    return cpt <= it->last ? it->nfd : cpt;
}

std::vector<uint32_t> decode_utf8_lenient(std::string_view s, std::vector<uint8_t>* byte_len) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    if (byte_len) {
        byte_len->clear();
        byte_len->reserve(s.size());
    }
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        const uint8_t b0 = p[i];
        uint32_t cpt = 0xFFFD;
        size_t len = 1;
        if (b0 < 0x80) {
            cpt = b0;
        } else if (!(b0 & 0x40)) {
            // stray continuation byte
        } else if (!(b0 & 0x20)) {
            if (i + 1 < n && is_cont(p[i + 1])) {
                cpt = (uint32_t(b0 & 0x1F) << 6) | (p[i + 1] & 0x3F);
                len = 2;
            }
        } else if (!(b0 & 0x10)) {
            if (i + 2 < n && is_cont(p[i + 1]) && is_cont(p[i + 2])) {
                cpt = (uint32_t(b0 & 0x0F) << 12) | (uint32_t(p[i + 1] & 0x3F) << 6) | (p[i + 2] & 0x3F);
                len = 3;
            }
        } else if (!(b0 & 0x08)) {
            if (i + 3 < n && is_cont(p[i + 1]) && is_cont(p[i + 2]) && is_cont(p[i + 3])) {
                const uint32_t v = (uint32_t(b0 & 0x07) << 18) | (uint32_t(p[i + 1] & 0x3F) << 12) |
                                   (uint32_t(p[i + 2] & 0x3F) << 6) | (p[i + 3] & 0x3F);
                // llama.cpp would throw later on values above U+10FFFF; they count as invalid here.
                if (v < kMaxCpt) {
                    cpt = v;
                    len = 4;
                }
            }
        }
        out.push_back(cpt);
        if (byte_len) byte_len->push_back(uint8_t(len));
        i += len;
    }
    return out;
}

void append_utf8(std::string& out, uint32_t cpt) {
    if (cpt < 0x80) {
        out.push_back(char(cpt));
    } else if (cpt < 0x800) {
        out.push_back(char(0xC0 | (cpt >> 6)));
        out.push_back(char(0x80 | (cpt & 0x3F)));
    } else if (cpt < 0x10000) {
        out.push_back(char(0xE0 | (cpt >> 12)));
        out.push_back(char(0x80 | ((cpt >> 6) & 0x3F)));
        out.push_back(char(0x80 | (cpt & 0x3F)));
    } else if (cpt < kMaxCpt) {
        out.push_back(char(0xF0 | (cpt >> 18)));
        out.push_back(char(0x80 | ((cpt >> 12) & 0x3F)));
        out.push_back(char(0x80 | ((cpt >> 6) & 0x3F)));
        out.push_back(char(0x80 | (cpt & 0x3F)));
    } else {
        out += "\xEF\xBF\xBD";
    }
}

int utf8_valid_len(std::string_view s, size_t pos) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    const size_t n = s.size();
    const uint8_t b0 = p[pos];
    if (b0 < 0x80) return 1;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    for (size_t k = 1; k < need; ++k) {
        if (pos + k >= n) return -1;
        const uint8_t c = p[pos + k];
        if (k == 1 ? (c < lo || c > hi) : !is_cont(c)) return 0;
    }
    return int(need);
}

size_t utf8_sanitize_append(std::string& out, std::string_view s, bool keep_tail) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    size_t i = 0;
    while (i < s.size()) {
        const int len = utf8_valid_len(s, i);
        if (len > 0) {
            out.append(s.data() + i, size_t(len));
            i += size_t(len);
            continue;
        }
        if (len < 0 && keep_tail) break;
        // Skip the maximal subpart: the lead byte and the continuation bytes that fit it.
        size_t j = i + 1;
        const uint8_t b0 = p[i];
        if (b0 >= 0xC2 && b0 <= 0xF4) {
            const size_t need = b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
            uint8_t lo = 0x80, hi = 0xBF;
            if (b0 == 0xE0) lo = 0xA0;
            if (b0 == 0xED) hi = 0x9F;
            if (b0 == 0xF0) lo = 0x90;
            if (b0 == 0xF4) hi = 0x8F;
            for (size_t k = 1; k < need && j < s.size(); ++k, ++j) {
                const uint8_t c = p[j];
                if (k == 1 ? (c < lo || c > hi) : !is_cont(c)) break;
            }
        }
        out += "\xEF\xBF\xBD";
        i = j;
    }
    return i;
}

const std::string& byte_to_unicode(uint8_t b) { return byte_map().to_unicode[b]; }

int unicode_to_byte(uint32_t cpt) {
    if (cpt >= 0x144) return -1;
    return byte_map().from_cpt[cpt];
}

}  // namespace yiti::tok
