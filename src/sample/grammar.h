// Grammar-constrained decoding: a context-free grammar over Unicode code points, an incremental
// matcher that consumes bytes (UTF-8, split anywhere, e.g. across tokens), and a per-step
// vocabulary mask computed from a token prefix trie.
//
// Grammars are written in a GBNF-like text form or built from expressions (GExpr):
//
//   root   ::= "{" ws pair ("," ws pair)* "}"      # a comment
//   pair   ::= [a-z]+ ws ":" ws ( "true" | "false" | [0-9]{1,3} )
//   ws     ::= [ \t\n]{0,4}
//
//   "literal" (escapes \n \r \t \\ \" \' \xHH \uHHHH \UHHHHHHHH, UTF-8 text taken as code points),
//   [abc] [a-z] [^"\\] character classes (same escapes, plus \] \[ \- \^), . (any character),
//   rule references, ( groups ), alternation |, repetition ? * + {m} {m,} {m,n} (m, n <= 10000).
//   A rule ends where the next `name ::=` begins. Undefined rules, duplicate definitions, left
//   recursion (including a repetition of something that can be empty) are errors (GrammarError).
//
// Inside, every repetition, optional part and group is compiled in continuation-passing style: the
// rest of the enclosing sequence becomes a tail call, so a stack frame is pushed only by a
// reference to a named rule that is not the last thing in its sequence. The matcher state is a set
// of stacks (hash-consed, so a state is a small sorted vector of ids) plus a partial UTF-8
// character.
//
// Vocabulary masks (Matcher::fill_mask): the tokens are put in a prefix trie once per vocabulary
// (TokenVocab). For each grammar position p that can be the top of a stack, a per-(grammar,
// vocabulary) cache (MaskCache, filled lazily, shareable between matchers and threads) holds the
// tokens accepted from p whatever lies below it on the stack and the tokens that depend on it
// ("uncertain": they complete p's rule and continue with a byte the rule may be followed by); it is
// computed by walking the trie from p, pruning each subtree at its first byte that every path
// rejects. A step ORs the accepted sets of the state's stacks and checks only the uncertain tokens
// against the full stack. States in the middle of a UTF-8 character walk the trie directly.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"

namespace yiti {
class Tokenizer;
}

namespace yiti::sample {

// A malformed grammar (text or expressions).
class GrammarError : public Error {
public:
    explicit GrammarError(const std::string& msg) : Error(msg) {}
};

// ---------------------------------------------------------------------------------------------
// Expressions: what grammar rules are made of.

struct GExpr;
using GExprPtr = std::shared_ptr<const GExpr>;

struct GExpr {
    enum class Kind { Empty, Chars, Seq, Alt, Repeat, Ref };
    Kind kind = Kind::Empty;
    std::vector<std::pair<uint32_t, uint32_t>> ranges;  // Chars: sorted, merged code point ranges
    std::vector<GExprPtr> items;                        // Seq / Alt: the parts; Repeat: items[0]
    int min = 0, max = -1;                              // Repeat: max -1 = unbounded
    std::string name;                                   // Ref: the rule
};

namespace gx {
GExprPtr empty();
GExprPtr lit(std::string_view utf8);  // the exact text
// A character class from inclusive code point ranges (any order, may overlap); negate: the
// complement within U+0000..U+10FFFF.
GExprPtr chars(std::vector<std::pair<uint32_t, uint32_t>> ranges, bool negate = false);
GExprPtr any_char();  // any code point
GExprPtr seq(std::vector<GExprPtr> items);
GExprPtr alt(std::vector<GExprPtr> items);
GExprPtr rep(GExprPtr x, int min, int max);  // max -1: unbounded
inline GExprPtr opt(GExprPtr x) { return rep(std::move(x), 0, 1); }
inline GExprPtr star(GExprPtr x) { return rep(std::move(x), 0, -1); }
inline GExprPtr plus(GExprPtr x) { return rep(std::move(x), 1, -1); }
GExprPtr ref(std::string name);
}  // namespace gx

// ---------------------------------------------------------------------------------------------
// The compiled grammar (immutable; share it with shared_ptr).

class Grammar {
public:
    // From GBNF-like text (see above); `root` names the start rule.
    static std::shared_ptr<const Grammar> parse(std::string_view text, const std::string& root = "root");
    // From named expressions.
    static std::shared_ptr<const Grammar> build(const std::map<std::string, GExprPtr>& rules,
                                                const std::string& root = "root");

    // The compiled rules as text (generated helper rules included), for debugging.
    std::string dump() const;
    size_t n_rules() const { return rule_alts.size(); }
    size_t n_elements() const { return elems.size(); }

    // --- the compiled form, used by the matcher ---
    // An element: kind in the top 2 bits, a class or rule id below. Each alternative of a rule is
    // a run of elements ending with an END element.
    enum : uint32_t { CHAR = 0u << 30, RULE = 1u << 30, END = 2u << 30, KIND_MASK = 3u << 30 };
    struct CharClass {
        std::vector<std::pair<uint32_t, uint32_t>> ranges;
        uint64_t ascii[2] = {0, 0};
        bool contains(uint32_t cp) const;
        bool intersects(uint32_t lo, uint32_t hi) const;
    };
    using ByteSet = std::array<uint64_t, 4>;
    std::vector<uint32_t> elems;
    std::vector<uint32_t> elem_rule;                // the rule each element belongs to
    std::vector<std::vector<uint32_t>> rule_alts;  // start position of each alternative
    std::vector<std::string> rule_names;
    std::vector<CharClass> classes;
    std::vector<ByteSet> follow;  // per rule: the first bytes of what may come after it
    uint32_t root = 0;
};

// ---------------------------------------------------------------------------------------------
// A vocabulary: the byte string of each token and a prefix trie over them. Build it once per
// tokenizer and share it.

class TokenVocab {
public:
    // pieces[id]: the bytes of token id; empty pieces (control tokens) are never allowed by a mask.
    // eog: the end-of-generation ids that fill_mask allows where the grammar may end.
    TokenVocab(std::vector<std::string> pieces, std::vector<int32_t> eog);
    // Pieces from Tokenizer::token_to_piece(id, false); eog from Tokenizer::eog_ids().
    static std::shared_ptr<const TokenVocab> from_tokenizer(const Tokenizer& tok);

    int32_t size() const { return int32_t(pieces_.size()); }
    const std::string& piece(int32_t id) const { return pieces_[size_t(id)]; }
    const std::vector<int32_t>& eog() const { return eog_; }
    size_t n_trie_nodes() const { return nodes_.size(); }

    // The trie in preorder (lexicographic order of the prefixes); node i's subtree is [i, end).
    struct Node {
        uint32_t end;        // one past the last node of the subtree
        uint32_t tok_begin;  // this node's tokens: toks_[tok_begin, tok_end); the subtree's tokens
        uint32_t tok_end;    //   are toks_[tok_begin, nodes_[end].tok_begin) (or to the end)
        uint16_t depth;      // 1 for the first byte
        uint8_t byte;
    };
    const std::vector<Node>& nodes() const { return nodes_; }
    const std::vector<int32_t>& node_tokens() const { return toks_; }
    uint32_t subtree_tok_end(uint32_t i) const {
        return nodes_[i].end < nodes_.size() ? nodes_[nodes_[i].end].tok_begin : uint32_t(toks_.size());
    }

private:
    std::vector<std::string> pieces_;
    std::vector<int32_t> eog_;
    std::vector<Node> nodes_;
    std::vector<int32_t> toks_;
};

// A token mask: bit id set = token id allowed.
struct TokenMask {
    std::vector<uint64_t> bits;
    void reset(int32_t n) { bits.assign((size_t(n) + 63) / 64, 0); }
    bool test(int32_t id) const { return (bits[size_t(id) >> 6] >> (id & 63)) & 1; }
    void set(int32_t id) { bits[size_t(id) >> 6] |= uint64_t(1) << (id & 63); }
    size_t count() const;
    bool operator==(const TokenMask& o) const { return bits == o.bits; }
};

// ---------------------------------------------------------------------------------------------
// The matcher.

// Hash-consed stacks: node (pos, parent). Id 0 is the empty stack (the grammar is complete), id
// 1 an unknown stack (used while building the mask cache).
class StackArena {
public:
    static constexpr uint32_t kEmpty = 0, kUnknown = 1;
    StackArena();
    uint32_t intern(uint32_t pos, uint32_t parent);
    uint32_t pos(uint32_t id) const { return uint32_t(nodes_[id]); }
    uint32_t parent(uint32_t id) const { return uint32_t(nodes_[id] >> 32); }
    size_t size() const { return nodes_.size(); }

private:
    void grow();
    std::vector<uint64_t> nodes_;  // pos | parent << 32
    std::vector<uint32_t> table_;  // open addressing: node id + 1, 0 = free
};

struct GrammarState {
    std::vector<uint32_t> stacks;  // sorted stack ids (in the matcher's arena); empty: dead
    uint32_t utf8 = 0;             // a partial UTF-8 character (0: none)
    bool dead() const { return stacks.empty(); }
    bool operator==(const GrammarState& o) const { return stacks == o.stacks && utf8 == o.utf8; }
};

// Per (grammar, vocabulary): for each stack-top position, the tokens accepted whatever the stack
// below, and the uncertain ones. Thread-safe; filled lazily.
class MaskCache {
public:
    MaskCache(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenVocab> v);
    struct Entry {
        std::vector<int32_t> accepted_list;  // when few
        std::vector<uint64_t> accepted_bits; // otherwise (empty when the list is used)
        std::vector<int32_t> uncertain;
    };
    const Entry& get(uint32_t pos);
    size_t n_entries();
    double build_seconds();  // total time spent filling entries

    const std::shared_ptr<const Grammar>& grammar() const { return g_; }
    const std::shared_ptr<const TokenVocab>& vocab() const { return v_; }

private:
    std::shared_ptr<const Grammar> g_;
    std::shared_ptr<const TokenVocab> v_;
    std::mutex mu_;
    std::unordered_map<uint32_t, std::unique_ptr<Entry>> entries_;
    StackArena arena_;
    double seconds_ = 0;
};

// One per sequence being generated (not thread-safe; states are only valid with the matcher
// that made them). Several matchers may share a MaskCache.
class Matcher {
public:
    Matcher(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenVocab> v);
    explicit Matcher(std::shared_ptr<MaskCache> cache);

    GrammarState initial();
    // Consumes bytes; returns false and leaves the state unchanged when they are rejected.
    bool advance(GrammarState& s, std::string_view bytes);
    bool accepts(const GrammarState& s, std::string_view bytes);
    // Tokens: an end-of-generation id is accepted when can_end(); other ids by their bytes
    // (an empty piece is never accepted). advance_token of an EOG id leaves the state as it is.
    bool accepts_token(const GrammarState& s, int32_t id);
    bool advance_token(GrammarState& s, int32_t id);
    // The grammar is complete here (end of generation allowed).
    bool can_end(const GrammarState& s) const;

    // The allowed tokens: via the cache (fast), by walking the whole trie from the state, and by
    // checking every token (reference). EOG ids are set when can_end().
    void fill_mask(const GrammarState& s, TokenMask& m);
    void fill_mask_trie(const GrammarState& s, TokenMask& m);
    void fill_mask_bruteforce(const GrammarState& s, TokenMask& m);
    // Logits of disallowed tokens become -inf.
    static void apply_mask(const TokenMask& m, float* logits, int32_t n);

    const Grammar& grammar() const { return *g_; }
    const TokenVocab& vocab() const { return *v_; }
    const std::shared_ptr<MaskCache>& cache() const { return cache_; }
    size_t arena_size() const { return arena_.size(); }

private:
    std::shared_ptr<MaskCache> cache_;
    std::shared_ptr<const Grammar> g_;
    std::shared_ptr<const TokenVocab> v_;
    StackArena arena_;
    std::vector<uint32_t> tmp_a_, tmp_b_;
};

}  // namespace yiti::sample
