// Shared internals of the tokenizer implementation (not part of the public API).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace yiti::tok {

// Per-token attributes, as llama.cpp keeps them (a token type plus strip flags).
enum Attr : uint32_t {
    ATTR_UNDEFINED = 0,
    ATTR_UNKNOWN = 1u << 1,
    ATTR_UNUSED = 1u << 2,
    ATTR_NORMAL = 1u << 3,
    ATTR_CONTROL = 1u << 4,
    ATTR_USER_DEFINED = 1u << 5,
    ATTR_BYTE = 1u << 6,
    ATTR_LSTRIP = 1u << 8,  // eat whitespace before the token when matching it in text
    ATTR_RSTRIP = 1u << 9,  // eat whitespace after it
};

struct SvHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, SvHash, std::equal_to<>>;

using SvPair = std::pair<std::string_view, std::string_view>;
struct SvPairHash {
    size_t operator()(const SvPair& p) const noexcept {
        const size_t a = std::hash<std::string_view>{}(p.first);
        const size_t b = std::hash<std::string_view>{}(p.second);
        return a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
    }
};

// A pre-tokenizer: the regular expressions llama.cpp applies, in order, for one
// tokenizer.ggml.pre value.
struct PreConfig {
    std::string name;                   // canonical name
    std::vector<std::string> patterns;  // PCRE2 (UTF + UCP) patterns
    bool clean_spaces = true;
    bool ignore_merges = false;
    bool add_bos = false;
    bool no_bos = false;  // the model has no BOS token by default (chatglm)
};
// nullptr when llama.cpp does not know the name.
const PreConfig* find_pre_config(std::string_view pre);
const PreConfig& default_pre_config();

class PreTokenizer {
public:
    explicit PreTokenizer(const PreConfig& cfg);  // throws Error when a pattern does not compile
    ~PreTokenizer();
    PreTokenizer(const PreTokenizer&) = delete;
    PreTokenizer& operator=(const PreTokenizer&) = delete;

    // Splits text into words as llama.cpp's unicode_regex_split does: each pattern splits every
    // piece the previous ones produced into matches and the text between them. Words are
    // returned as the UTF-8 of their code points (invalid input bytes become U+FFFD), not yet
    // byte-level encoded.
    std::vector<std::string> split(std::string_view text) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace yiti::tok

namespace yiti {

struct Tokenizer::Impl {
    VocabType type = VocabType::SPM;
    std::string model;
    std::string pre = "default";

    std::vector<std::string> text;
    std::vector<float> score;
    std::vector<uint32_t> attr;
    std::vector<TokenType> ttype;
    tok::TokenMap token_to_id;
    size_t max_token_len = 0;

    int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, sep = -1, pad = -1, mask = -1, nl = -1;
    int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;

    bool add_bos = false;
    bool add_eos = false;
    bool add_space_prefix = false;
    bool clean_spaces = false;
    bool ignore_merges = false;

    std::vector<int32_t> special_tokens;  // CONTROL / USER_DEFINED / UNKNOWN, longest text first
    std::vector<std::string> pieces;      // token_to_piece(id, special = true)
    std::vector<int32_t> eog;             // sorted
    std::vector<uint8_t> eog_flag;        // per token

    // BPE
    std::vector<std::string> merge_store;  // owns the strings the rank keys point into
    std::unordered_map<tok::SvPair, int32_t, tok::SvPairHash> ranks;
    std::unique_ptr<tok::PreTokenizer> pretok;

    std::vector<std::string> warnings;

    int32_t n_tokens() const { return int32_t(text.size()); }
    int32_t lookup(std::string_view s) const {
        auto it = token_to_id.find(s);
        return it == token_to_id.end() ? -1 : it->second;
    }
    int32_t bpe_rank(std::string_view a, std::string_view b) const {
        auto it = ranks.find(tok::SvPair(a, b));
        return it == ranks.end() ? -1 : it->second;
    }
    // SentencePiece byte fallback token for one byte: <0xNN>, else the byte itself, else unk.
    int32_t spm_byte_token(uint8_t b) const;

    // The model-specific segmentation of one piece of raw text (no special tokens inside).
    void tokenize_spm(std::string_view escaped, std::vector<int32_t>& out) const;  // ' ' already '▁'
    void tokenize_bpe(std::string_view text, std::vector<int32_t>& out) const;
    void tokenize_wpm(std::string_view text, std::vector<int32_t>& out) const;

    std::string make_piece(int32_t id) const;  // for the piece cache
};

}  // namespace yiti
