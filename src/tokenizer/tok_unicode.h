// Unicode helpers for the tokenizers (internal to src/tokenizer).
//
// The code point decoding here deliberately follows llama.cpp's lenient rules so that token ids
// match byte for byte: a lead byte announces the sequence length, continuation bytes are checked,
// overlong forms and surrogates are accepted as they decode, and every byte that cannot start a
// sequence becomes U+FFFD. Categories, lowercase and NFD data come from tables generated from the
// Unicode Character Database 15.1, the version llama.cpp's tables were made from
// (tok_unicode_data.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace yiti::tok {

// General category, collapsed to the classes the tokenizers care about.
enum Category : uint8_t {
    CAT_UNDEFINED = 0,  // Cn (unassigned)
    CAT_LETTER,         // L
    CAT_NUMBER,         // N
    CAT_PUNCT,          // P
    CAT_SYMBOL,         // S
    CAT_MARK,           // M
    CAT_SEPARATOR,      // Z
    CAT_CONTROL,        // Cc, Cf, Co, Cs
};

Category cpt_category(uint32_t cpt);
// The Unicode White_Space property (what llama.cpp treats as \s).
bool cpt_is_whitespace(uint32_t cpt);
// Simple lowercase mapping (UnicodeData field 13); identity when there is none.
uint32_t cpt_tolower(uint32_t cpt);
// First code point of the canonical decomposition; identity when there is none.
uint32_t cpt_nfd_first(uint32_t cpt);

// Sequence length announced by a UTF-8 lead byte (1 for ASCII and stray continuation bytes).
inline size_t utf8_len(uint8_t lead) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}

// llama.cpp-compatible decoding (see the file comment). When `byte_len` is given it receives
// the number of input bytes each code point consumed.
std::vector<uint32_t> decode_utf8_lenient(std::string_view s, std::vector<uint8_t>* byte_len = nullptr);
// Encodes any value up to 0x10FFFF (surrogates included, as llama.cpp does); larger values
// become U+FFFD.
void append_utf8(std::string& out, uint32_t cpt);

// Strict UTF-8 scan: the length of the valid sequence at s[pos], 0 when the bytes there are not
// valid UTF-8 (a lone continuation, an overlong form, a surrogate, a value above U+10FFFF), or
// -1 when s ends before an otherwise valid sequence is complete.
int utf8_valid_len(std::string_view s, size_t pos);
// Appends s to out with every invalid sequence (maximal subpart) replaced by U+FFFD. With
// keep_tail, an incomplete but so far valid sequence at the end is left unconsumed. Returns the
// number of bytes of s consumed.
size_t utf8_sanitize_append(std::string& out, std::string_view s, bool keep_tail);
inline std::string utf8_sanitize(std::string_view s) {
    std::string out;
    utf8_sanitize_append(out, s, false);
    return out;
}

// GPT-2 byte-level mapping: each byte to the UTF-8 text of the code point standing for it.
const std::string& byte_to_unicode(uint8_t b);
// The byte a code point stands for, or -1 when the code point is not in the mapping.
int unicode_to_byte(uint32_t cpt);

// Generated tables (tok_unicode_data.cpp).
extern const uint32_t kCategoryRanges[];  // (first << 3) | Category, ascending
extern const size_t kCategoryRangesCount;
struct LowerRun {
    uint32_t first, last;
    int32_t step, delta;
};
struct NfdRange {
    uint32_t first, last, nfd;
};
extern const LowerRun kLowerRuns[];
extern const size_t kLowerRunsCount;
extern const NfdRange kNfdRanges[];
extern const size_t kNfdRangesCount;

}  // namespace yiti::tok
