// Shared internals of the tokenizer implementation (not part of the public API).
#pragma once
#include <cstdint>
#include <deque>
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

inline uint64_t hash_bytes(std::string_view s) {  // FNV-1a
    uint64_t h = 0xCBF29CE484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
    return h ^ (h >> 31);
}

// Token text -> id, an open-addressing table over the vocabulary's own strings (no copies).
// When a text occurs twice, the later id wins, as in llama.cpp.
class TokenIndex {
public:
    // `texts` must outlive the index and not change. Returns the number of duplicate texts.
    size_t build(const std::vector<std::string>& texts);
    int32_t find(std::string_view s) const {
        if (slots_.empty()) return -1;
        const uint64_t h = hash_bytes(s);
        const uint32_t tag = uint32_t(h >> 32);
        for (size_t i = size_t(h) & mask_;; i = (i + 1) & mask_) {
            const uint64_t e = slots_[i];
            if (e == 0) return -1;
            if (uint32_t(e >> 32) == tag) {
                const int32_t id = int32_t(uint32_t(e) - 1);
                if ((*texts_)[size_t(id)] == s) return id;
            }
        }
    }

private:
    std::vector<uint64_t> slots_;  // (tag << 32) | (id + 1); 0 = empty
    size_t mask_ = 0;
    const std::vector<std::string>* texts_ = nullptr;
};

// (left id, right id) -> merge rank, open addressing. The first insertion of a key wins.
class PairIndex {
public:
    void reserve(size_t n);
    void insert(uint64_t key, int32_t value);
    int32_t find(uint64_t key) const {
        if (slots_.empty()) return -1;
        for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
            const Entry& e = slots_[i];
            if (e.key == key) return e.value;
            if (e.key == kEmpty) return -1;
        }
    }
    static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

private:
    static constexpr uint64_t kEmpty = ~uint64_t(0);
    struct Entry {
        uint64_t key;
        int32_t value;
    };
    size_t slot_of(uint64_t k) const {
        k *= 0x9E3779B97F4A7C15ull;
        return size_t(k ^ (k >> 29)) & mask_;
    }
    std::vector<Entry> slots_;
    size_t mask_ = 0;
    size_t count_ = 0;
};

using SvPair = std::pair<std::string_view, std::string_view>;
struct SvPairHash {
    size_t operator()(const SvPair& p) const noexcept {
        const uint64_t a = hash_bytes(p.first), b = hash_bytes(p.second);
        return size_t(a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2)));
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
    tok::TokenIndex index;
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

    // BPE merge ranks: by token ids when both sides are tokens (the normal case), by text
    // otherwise (merges of strings the vocabulary lacks).
    tok::PairIndex ranks;
    std::deque<std::string> odd_merge_text;  // owns the strings odd_ranks points into
    std::unordered_map<tok::SvPair, int32_t, tok::SvPairHash> odd_ranks;
    std::unique_ptr<tok::PreTokenizer> pretok;

    std::vector<std::string> warnings;

    int32_t n_tokens() const { return int32_t(text.size()); }
    int32_t lookup(std::string_view s) const { return index.find(s); }
    // Rank of merging a (token id ia, -1 when not a token) with b, -1 when there is no such merge.
    int32_t bpe_rank(std::string_view a, int32_t ia, std::string_view b, int32_t ib) const {
        if (ia >= 0 && ib >= 0) return ranks.find(tok::PairIndex::key(ia, ib));
        if (odd_ranks.empty()) return -1;
        auto it = odd_ranks.find(tok::SvPair(a, b));
        return it == odd_ranks.end() ? -1 : it->second;
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
