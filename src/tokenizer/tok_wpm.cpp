// WordPiece ("bert"), as llama.cpp runs it: strip accents (each code point becomes the first code
// point of its NFD form), lowercase, split on whitespace and around punctuation, ASCII symbols
// and CJK ideographs, drop control characters; then cover each word greedily with the longest
// vocabulary entries. Word-initial entries carry a "▁" prefix in GGUF vocabularies (the converter
// turns "##x" into "x" and "x" into "▁x"); a word that cannot be covered becomes [UNK].
#include <algorithm>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_unicode.h"

namespace yiti {

namespace {

bool is_chinese_char(uint32_t c) {
    return (c >= 0x04E00 && c <= 0x09FFF) || (c >= 0x03400 && c <= 0x04DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
           (c >= 0x2B920 && c <= 0x2CEAF) ||  // 0x2B820 in the CJK block list; 0x2B920 is what HF uses
           (c >= 0x0F900 && c <= 0x0FAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

std::vector<std::string> wpm_words(std::string_view text) {
    std::vector<std::string> words(1);
    for (uint32_t cpt : tok::decode_utf8_lenient(text)) {
        cpt = tok::cpt_nfd_first(cpt);
        if (tok::cpt_is_whitespace(cpt)) {
            if (!words.back().empty()) words.emplace_back();
            continue;
        }
        const tok::Category cat = tok::cpt_category(cpt);
        if (cpt == 0 || cpt == 0xFFFD || cat == tok::CAT_CONTROL) continue;
        std::string s;
        tok::append_utf8(s, tok::cpt_tolower(cpt));
        if (cat == tok::CAT_PUNCT || (cpt < 0x7F && cat == tok::CAT_SYMBOL) || is_chinese_char(cpt)) {
            if (!words.back().empty()) words.emplace_back();
            words.back() = std::move(s);
            words.emplace_back();
        } else {
            words.back() += s;
        }
    }
    if (words.back().empty()) words.pop_back();
    return words;
}

}  // namespace

void Tokenizer::Impl::tokenize_wpm(std::string_view text, std::vector<int32_t>& out) const {
    for (const std::string& word : wpm_words(text)) {
        if (word.empty()) continue;
        const std::string w = "\xE2\x96\x81" + word;
        const size_t n = w.size();
        const size_t first = out.size();
        for (size_t i = 0; i < n; ++i) {
            bool matched = false;
            for (size_t j = std::min(n, i + max_token_len + 1); j > i; --j) {
                const int32_t id = lookup(std::string_view(w.data() + i, j - i));
                if (id >= 0) {
                    out.push_back(id);
                    matched = true;
                    i = j - 1;
                    break;
                }
            }
            if (!matched) {
                out.resize(first);
                break;
            }
        }
        if (out.size() == first && unk >= 0) out.push_back(unk);
    }
}

}  // namespace yiti
