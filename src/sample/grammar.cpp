// Grammar engine: expressions, the GBNF-like parser, the compiler to flat rules (continuation-
// passing style), the token trie, hash-consed stacks, the byte matcher and the vocabulary masks.
#include "sample/grammar.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <limits>
#include <set>

#include "tokenizer/tokenizer.h"

namespace yiti::sample {

namespace {

constexpr uint32_t kMaxCp = 0x10FFFF;
constexpr int kMaxRepeat = 10000;
constexpr size_t kMaxElements = size_t(1) << 24;

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

Ranges normalize(Ranges r) {
    for (auto& x : r) {
        if (x.first > x.second) std::swap(x.first, x.second);
        x.second = std::min(x.second, kMaxCp);
    }
    std::sort(r.begin(), r.end());
    Ranges out;
    for (const auto& x : r) {
        if (x.first > kMaxCp) continue;
        if (!out.empty() && x.first <= out.back().second + 1)
            out.back().second = std::max(out.back().second, x.second);
        else
            out.push_back(x);
    }
    return out;
}

Ranges complement(const Ranges& r) {
    Ranges out;
    uint32_t next = 0;
    for (const auto& x : r) {
        if (x.first > next) out.push_back({next, x.first - 1});
        next = x.second + 1;
    }
    if (next <= kMaxCp) out.push_back({next, kMaxCp});
    return out;
}

void append_utf8(std::string& s, uint32_t cp) {
    if (cp < 0x80) {
        s += char(cp);
    } else if (cp < 0x800) {
        s += char(0xC0 | (cp >> 6));
        s += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s += char(0xE0 | (cp >> 12));
        s += char(0x80 | ((cp >> 6) & 0x3F));
        s += char(0x80 | (cp & 0x3F));
    } else {
        s += char(0xF0 | (cp >> 18));
        s += char(0x80 | ((cp >> 12) & 0x3F));
        s += char(0x80 | ((cp >> 6) & 0x3F));
        s += char(0x80 | (cp & 0x3F));
    }
}

// Decodes one code point at s[i] (a byte that does not start a valid sequence is taken as itself).
uint32_t decode_utf8(std::string_view s, size_t& i) {
    const auto c = uint8_t(s[i]);
    const int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    if (n <= 0 || i + size_t(n) >= s.size()) {
        ++i;
        return c;
    }
    uint32_t cp = c & (0x3F >> n);
    for (int k = 1; k <= n; ++k) {
        const auto d = uint8_t(s[i + size_t(k)]);
        if ((d & 0xC0) != 0x80) {
            ++i;
            return c;
        }
        cp = (cp << 6) | (d & 0x3F);
    }
    i += size_t(n) + 1;
    return cp;
}

// The code points whose UTF-8 encoding starts with byte b (empty when b cannot start one).
bool lead_range(uint32_t b, uint32_t& lo, uint32_t& hi) {
    if (b < 0x80) {
        lo = hi = b;
    } else if (b >= 0xC2 && b <= 0xDF) {
        lo = (b & 0x1F) << 6;
        hi = lo | 0x3F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        lo = (b & 0xF) << 12;
        hi = lo | 0xFFF;
        if (b == 0xE0) lo = 0x800;
        if (b == 0xED) hi = 0xD7FF;
    } else if (b >= 0xF0 && b <= 0xF4) {
        lo = (b & 7) << 18;
        hi = lo | 0x3FFFF;
        if (b == 0xF0) lo = 0x10000;
        if (b == 0xF4) hi = kMaxCp;
    } else {
        return false;
    }
    return true;
}

// Incremental UTF-8 decoding. A partial character is packed as: bits 0-20 the value so far,
// 21-22 the bytes still needed, 24-31 the lead byte (0 = none). Returns 0: invalid byte,
// 1: a complete code point (cp), 2: still partial, the possible code points are [lo, hi].
int utf8_next(uint32_t st, uint8_t b, uint32_t& st_out, uint32_t& cp, uint32_t& lo, uint32_t& hi) {
    uint32_t lead, need, v;
    if (st == 0) {
        if (b < 0x80) {
            cp = b;
            st_out = 0;
            return 1;
        }
        lead = b;
        if (b >= 0xC2 && b <= 0xDF) {
            need = 1;
            v = b & 0x1F;
        } else if (b >= 0xE0 && b <= 0xEF) {
            need = 2;
            v = b & 0xF;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3;
            v = b & 7;
        } else {
            return 0;
        }
    } else {
        lead = st >> 24;
        need = (st >> 21) & 3;
        v = st & 0x1FFFFF;
        if ((b & 0xC0) != 0x80) return 0;
        const uint32_t total = lead < 0xE0 ? 1 : lead < 0xF0 ? 2 : 3;
        if (need == total) {
            if ((lead == 0xE0 && b < 0xA0) || (lead == 0xED && b > 0x9F) || (lead == 0xF0 && b < 0x90) ||
                (lead == 0xF4 && b > 0x8F))
                return 0;
        }
        v = (v << 6) | (b & 0x3F);
        if (--need == 0) {
            cp = v;
            st_out = 0;
            return 1;
        }
    }
    st_out = v | (need << 21) | (lead << 24);
    lo = v << (6 * need);
    hi = lo | ((1u << (6 * need)) - 1);
    const uint32_t total = lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    lo = std::max(lo, total == 2 ? 0x80u : total == 3 ? 0x800u : 0x10000u);
    hi = std::min(hi, kMaxCp);
    if (lead == 0xED) hi = std::min(hi, 0xD7FFu);
    return 2;
}

std::string cp_text(uint32_t cp, bool in_class) {
    char buf[16];
    switch (cp) {
        case '\n': return "\\n";
        case '\r': return "\\r";
        case '\t': return "\\t";
        case '\\': return "\\\\";
        case '"': return "\\\"";
        default: break;
    }
    if (in_class && (cp == ']' || cp == '-' || cp == '^' || cp == '[')) return std::string("\\") + char(cp);
    if (cp < 0x20 || cp == 0x7F) {
        snprintf(buf, sizeof buf, "\\x%02X", cp);
        return buf;
    }
    if (cp > 0x7F && cp < 0xA0) {
        snprintf(buf, sizeof buf, "\\u%04X", cp);
        return buf;
    }
    std::string s;
    append_utf8(s, cp);
    return s;
}

inline bool byteset_has(const Grammar::ByteSet& s, uint8_t b) { return (s[b >> 6] >> (b & 63)) & 1; }
inline void byteset_set(Grammar::ByteSet& s, uint8_t b) { s[b >> 6] |= uint64_t(1) << (b & 63); }
inline bool byteset_or(Grammar::ByteSet& a, const Grammar::ByteSet& b) {
    bool changed = false;
    for (int i = 0; i < 4; ++i) {
        const uint64_t n = a[size_t(i)] | b[size_t(i)];
        changed |= n != a[size_t(i)];
        a[size_t(i)] = n;
    }
    return changed;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Expressions

namespace gx {

GExprPtr empty() { return std::make_shared<GExpr>(); }

GExprPtr chars(std::vector<std::pair<uint32_t, uint32_t>> ranges, bool negate) {
    auto e = std::make_shared<GExpr>();
    e->kind = GExpr::Kind::Chars;
    e->ranges = normalize(std::move(ranges));
    if (negate) e->ranges = complement(e->ranges);
    return e;
}

GExprPtr any_char() { return chars({{0, kMaxCp}}); }

GExprPtr lit(std::string_view utf8) {
    std::vector<GExprPtr> items;
    for (size_t i = 0; i < utf8.size();) {
        const uint32_t cp = decode_utf8(utf8, i);
        items.push_back(chars({{cp, cp}}));
    }
    if (items.empty()) return empty();
    if (items.size() == 1) return items[0];
    return seq(std::move(items));
}

GExprPtr seq(std::vector<GExprPtr> items) {
    if (items.size() == 1) return items[0];
    auto e = std::make_shared<GExpr>();
    e->kind = items.empty() ? GExpr::Kind::Empty : GExpr::Kind::Seq;
    e->items = std::move(items);
    return e;
}

GExprPtr alt(std::vector<GExprPtr> items) {
    if (items.size() == 1) return items[0];
    if (items.empty()) throw GrammarError("an alternation with no alternatives");
    auto e = std::make_shared<GExpr>();
    e->kind = GExpr::Kind::Alt;
    e->items = std::move(items);
    return e;
}

GExprPtr rep(GExprPtr x, int min, int max) {
    if (min < 0 || (max >= 0 && max < min))
        throw GrammarError(strprintf("bad repetition count {%d,%d}", min, max));
    if (min > kMaxRepeat || max > kMaxRepeat)
        throw GrammarError(strprintf("repetition count over %d", kMaxRepeat));
    if (min == 1 && max == 1) return x;
    auto e = std::make_shared<GExpr>();
    e->kind = GExpr::Kind::Repeat;
    e->items = {std::move(x)};
    e->min = min;
    e->max = max;
    return e;
}

GExprPtr ref(std::string name) {
    auto e = std::make_shared<GExpr>();
    e->kind = GExpr::Kind::Ref;
    e->name = std::move(name);
    return e;
}

}  // namespace gx

// ---------------------------------------------------------------------------------------------
// Character classes

bool Grammar::CharClass::contains(uint32_t cp) const {
    if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
    auto it = std::upper_bound(ranges.begin(), ranges.end(), std::make_pair(cp, kMaxCp + 1));
    if (it == ranges.begin()) return false;
    --it;
    return cp >= it->first && cp <= it->second;
}

bool Grammar::CharClass::intersects(uint32_t lo, uint32_t hi) const {
    auto it = std::lower_bound(ranges.begin(), ranges.end(), lo,
                               [](const std::pair<uint32_t, uint32_t>& r, uint32_t v) { return r.second < v; });
    return it != ranges.end() && it->first <= hi;
}

// ---------------------------------------------------------------------------------------------
// The GBNF-like parser

namespace {

class GbnfParser {
public:
    explicit GbnfParser(std::string_view s) : s_(s) {}

    std::map<std::string, GExprPtr> parse() {
        skip();
        while (i_ < s_.size()) {
            const size_t at = i_;
            std::string name = parse_name();
            if (name.empty()) fail("expected a rule name");
            skip();
            if (s_.substr(i_, 3) != "::=") fail("expected ::= after the rule name");
            i_ += 3;
            GExprPtr body = parse_alt();
            if (rules_.count(name)) {
                i_ = at;
                fail("rule '" + name + "' is defined twice");
            }
            rules_[name] = body;
            skip();
        }
        return rules_;
    }

private:
    [[noreturn]] void fail(const std::string& msg) const {
        size_t line = 1, col = 1;
        for (size_t k = 0; k < i_ && k < s_.size(); ++k) {
            if (s_[k] == '\n') {
                ++line;
                col = 1;
            } else {
                ++col;
            }
        }
        throw GrammarError(strprintf("grammar: line %zu column %zu: %s", line, col, msg.c_str()));
    }

    void skip() {
        while (i_ < s_.size()) {
            const char c = s_[i_];
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                ++i_;
            } else if (c == '#') {
                while (i_ < s_.size() && s_[i_] != '\n') ++i_;
            } else {
                break;
            }
        }
    }

    static bool name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    }

    std::string parse_name() {
        const size_t b = i_;
        while (i_ < s_.size() && name_char(s_[i_])) ++i_;
        return std::string(s_.substr(b, i_ - b));
    }

    bool at_rule_start() {
        const size_t save = i_;
        const std::string n = parse_name();
        skip();
        const bool r = !n.empty() && s_.substr(i_, 3) == "::=";
        i_ = save;
        return r;
    }

    GExprPtr parse_alt() {
        std::vector<GExprPtr> items{parse_seq()};
        for (;;) {
            skip();
            if (i_ < s_.size() && s_[i_] == '|') {
                ++i_;
                items.push_back(parse_seq());
            } else {
                break;
            }
        }
        return gx::alt(std::move(items));
    }

    GExprPtr parse_seq() {
        std::vector<GExprPtr> items;
        for (;;) {
            skip();
            if (i_ >= s_.size() || s_[i_] == '|' || s_[i_] == ')' || at_rule_start()) break;
            items.push_back(parse_postfix());
        }
        return gx::seq(std::move(items));
    }

    int parse_int() {
        const size_t b = i_;
        long v = 0;
        while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
            v = v * 10 + (s_[i_] - '0');
            if (v > kMaxRepeat) fail(strprintf("repetition count over %d", kMaxRepeat));
            ++i_;
        }
        if (i_ == b) fail("expected a number");
        return int(v);
    }

    GExprPtr parse_postfix() {
        GExprPtr e = parse_primary();
        for (;;) {
            if (i_ >= s_.size()) break;
            const char c = s_[i_];
            if (c == '*') {
                ++i_;
                e = gx::star(e);
            } else if (c == '+') {
                ++i_;
                e = gx::plus(e);
            } else if (c == '?') {
                ++i_;
                e = gx::opt(e);
            } else if (c == '{') {
                ++i_;
                skip();
                const int m = parse_int();
                int n = m;
                skip();
                if (i_ < s_.size() && s_[i_] == ',') {
                    ++i_;
                    skip();
                    n = (i_ < s_.size() && s_[i_] == '}') ? -1 : parse_int();
                    skip();
                }
                if (i_ >= s_.size() || s_[i_] != '}') fail("expected } to close the repetition");
                ++i_;
                if (n >= 0 && n < m) fail("repetition {m,n} with n < m");
                e = gx::rep(e, m, n);
            } else {
                break;
            }
        }
        return e;
    }

    int hexval(char c) const {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }

    uint32_t parse_char() {
        if (i_ >= s_.size()) fail("unexpected end of the grammar");
        if (s_[i_] != '\\') return decode_utf8(s_, i_);
        ++i_;
        if (i_ >= s_.size()) fail("unexpected end after \\");
        const char c = s_[i_++];
        int nhex = 0;
        switch (c) {
            case 'n': return '\n';
            case 'r': return '\r';
            case 't': return '\t';
            case '0': return 0;
            case 'x': nhex = 2; break;
            case 'u': nhex = 4; break;
            case 'U': nhex = 8; break;
            case '\\': case '"': case '\'': case ']': case '[': case '-': case '^': case '/': case '.':
                return uint8_t(c);
            default: fail(std::string("unknown escape \\") + c);
        }
        uint32_t v = 0;
        for (int k = 0; k < nhex; ++k) {
            const int h = i_ < s_.size() ? hexval(s_[i_]) : -1;
            if (h < 0) fail("bad hexadecimal escape");
            v = v * 16 + uint32_t(h);
            ++i_;
        }
        if (v > kMaxCp) fail("code point out of range");
        return v;
    }

    GExprPtr parse_primary() {
        const char c = s_[i_];
        if (c == '"') {
            ++i_;
            std::vector<GExprPtr> items;
            while (true) {
                if (i_ >= s_.size()) fail("unterminated string literal");
                if (s_[i_] == '"') {
                    ++i_;
                    break;
                }
                const uint32_t cp = parse_char();
                items.push_back(gx::chars({{cp, cp}}));
            }
            return gx::seq(std::move(items));
        }
        if (c == '[') {
            ++i_;
            bool neg = false;
            if (i_ < s_.size() && s_[i_] == '^') {
                neg = true;
                ++i_;
            }
            Ranges r;
            while (true) {
                if (i_ >= s_.size()) fail("unterminated character class");
                if (s_[i_] == ']') {
                    ++i_;
                    break;
                }
                const uint32_t lo = parse_char();
                uint32_t hi = lo;
                if (i_ + 1 < s_.size() && s_[i_] == '-' && s_[i_ + 1] != ']') {
                    ++i_;
                    hi = parse_char();
                    if (hi < lo) fail("character range out of order");
                }
                r.push_back({lo, hi});
            }
            return gx::chars(std::move(r), neg);
        }
        if (c == '(') {
            ++i_;
            GExprPtr e = parse_alt();
            skip();
            if (i_ >= s_.size() || s_[i_] != ')') fail("expected )");
            ++i_;
            return e;
        }
        if (c == '.') {
            ++i_;
            return gx::any_char();
        }
        std::string name = parse_name();
        if (name.empty()) fail(std::string("unexpected character '") + c + "'");
        return gx::ref(std::move(name));
    }

    std::string_view s_;
    size_t i_ = 0;
    std::map<std::string, GExprPtr> rules_;
};

// ---------------------------------------------------------------------------------------------
// The compiler: expressions to flat rules.

using Seq = std::vector<uint32_t>;
using Alts = std::vector<Seq>;

class Compiler {
public:
    Compiler(const std::map<std::string, GExprPtr>& rules, Grammar& g) : src_(rules), g_(g) {}

    void run(const std::string& root) {
        if (!src_.count(root)) throw GrammarError("grammar: no rule named '" + root + "' (the start rule)");
        for (const auto& [name, e] : src_) {
            if (!e) throw GrammarError("grammar: rule '" + name + "' has no body");
            named_[name] = new_rule(name);
        }
        for (const auto& [name, e] : src_) count_refs(e.get());
        for (const auto& [name, e] : src_) {
            cur_name_ = name;
            counter_ = 0;
            alts_[named_[name]] = cps(*e, Seq{});
        }
        g_.root = named_[root];
        flatten();
        check_left_recursion();
        compute_follow();
    }

private:
    uint32_t new_rule(const std::string& name) {
        alts_.emplace_back();
        names_.push_back(name);
        return uint32_t(alts_.size() - 1);
    }

    uint32_t gen_rule(Alts alts) {
        const uint32_t r = new_rule(cur_name_ + "-" + std::to_string(++counter_));
        alts_[r] = std::move(alts);
        return r;
    }

    uint32_t class_id(const Ranges& r) {
        auto it = class_ids_.find(r);
        if (it != class_ids_.end()) return it->second;
        Grammar::CharClass c;
        c.ranges = r;
        for (const auto& [lo, hi] : r)
            for (uint32_t cp = lo; cp <= hi && cp < 128; ++cp) c.ascii[cp >> 6] |= uint64_t(1) << (cp & 63);
        g_.classes.push_back(std::move(c));
        const auto id = uint32_t(g_.classes.size() - 1);
        class_ids_[r] = id;
        return id;
    }

    void count_refs(const GExpr* e) {
        if (++refs_[e] > 1) return;
        for (const auto& c : e->items) count_refs(c.get());
    }

    void grow(size_t n) {
        total_ += n;
        if (total_ > kMaxElements) throw GrammarError("grammar: too large (over 16M elements)");
    }

    Seq single(Alts a) {
        if (a.size() == 1) return std::move(a[0]);
        return Seq{Grammar::RULE | gen_rule(std::move(a))};
    }

    // Alternatives deriving L(e) followed by the sequence k (which is in tail position).
    Alts cps(const GExpr& e, const Seq& k) {
        using K = GExpr::Kind;
        if (e.kind == K::Empty) return {k};
        if (e.kind == K::Chars) {
            Seq s;
            s.reserve(k.size() + 1);
            s.push_back(Grammar::CHAR | class_id(e.ranges));
            s.insert(s.end(), k.begin(), k.end());
            grow(s.size());
            return {std::move(s)};
        }
        if (e.kind == K::Ref) {
            auto it = named_.find(e.name);
            if (it == named_.end()) throw GrammarError("grammar: undefined rule '" + e.name + "'");
            Seq s{Grammar::RULE | it->second};
            s.insert(s.end(), k.begin(), k.end());
            return {std::move(s)};
        }
        // Shared subexpressions are compiled once per continuation.
        if (refs_[&e] > 1) {
            auto key = std::make_pair(&e, k);
            auto it = memo_.find(key);
            if (it != memo_.end()) return {Seq{Grammar::RULE | it->second}};
            const uint32_t r = new_rule(cur_name_ + "-" + std::to_string(++counter_));
            memo_[key] = r;
            alts_[r] = cps_inner(e, k);
            return {Seq{Grammar::RULE | r}};
        }
        return cps_inner(e, k);
    }

    Seq shorten(const Seq& k) { return k.size() <= 1 ? k : Seq{Grammar::RULE | gen_rule({k})}; }

    Alts cps_inner(const GExpr& e, const Seq& k) {
        using K = GExpr::Kind;
        switch (e.kind) {
            case K::Seq: {
                Alts cur{k};
                for (size_t i = e.items.size(); i-- > 0;) {
                    Seq kk = single(std::move(cur));
                    cur = cps(*e.items[i], kk);
                }
                return cur;
            }
            case K::Alt: {
                const Seq k2 = shorten(k);
                Alts out;
                for (const auto& o : e.items) {
                    Alts a = cps(*o, k2);
                    for (auto& s : a) out.push_back(std::move(s));
                }
                return out;
            }
            case K::Repeat: {
                const GExpr& x = *e.items[0];
                Alts tailpart;
                if (e.max < 0) {
                    const Seq k2 = shorten(k);
                    const uint32_t L = new_rule(cur_name_ + "-" + std::to_string(++counter_));
                    Alts a = cps(x, Seq{Grammar::RULE | L});
                    a.push_back(k2);
                    alts_[L] = std::move(a);
                    tailpart = {Seq{Grammar::RULE | L}};
                } else {
                    const int n = e.max - e.min;
                    if (n == 0) {
                        tailpart = {k};
                    } else {
                        const Seq k2 = shorten(k);
                        Seq next = k2;
                        for (int j = 1; j <= n; ++j) {
                            Alts a = cps(x, next);
                            a.push_back(k2);
                            if (j == n) {
                                tailpart = std::move(a);
                            } else {
                                next = Seq{Grammar::RULE | gen_rule(std::move(a))};
                            }
                        }
                    }
                }
                Alts cur = std::move(tailpart);
                for (int j = 0; j < e.min; ++j) {
                    Seq kk = single(std::move(cur));
                    cur = cps(x, kk);
                }
                return cur;
            }
            default: return cps(e, k);
        }
    }

    void flatten() {
        g_.rule_names = names_;
        g_.rule_alts.assign(alts_.size(), {});
        for (size_t r = 0; r < alts_.size(); ++r) {
            for (const Seq& s : alts_[r]) {
                g_.rule_alts[r].push_back(uint32_t(g_.elems.size()));
                for (uint32_t x : s) {
                    g_.elems.push_back(x);
                    g_.elem_rule.push_back(uint32_t(r));
                }
                g_.elems.push_back(Grammar::END);
                g_.elem_rule.push_back(uint32_t(r));
            }
        }
    }

    void check_left_recursion() {
        const size_t n = g_.rule_alts.size();
        nullable_.assign(n, false);
        for (bool changed = true; changed;) {
            changed = false;
            for (size_t r = 0; r < n; ++r) {
                if (nullable_[r]) continue;
                for (uint32_t a : g_.rule_alts[r]) {
                    bool all = true;
                    for (uint32_t p = a; (g_.elems[p] & Grammar::KIND_MASK) != Grammar::END; ++p) {
                        const uint32_t e = g_.elems[p];
                        if ((e & Grammar::KIND_MASK) == Grammar::CHAR || !nullable_[e & ~Grammar::KIND_MASK]) {
                            all = false;
                            break;
                        }
                    }
                    if (all) {
                        nullable_[r] = true;
                        changed = true;
                        break;
                    }
                }
            }
        }
        std::vector<std::vector<uint32_t>> edges(n);
        for (size_t r = 0; r < n; ++r)
            for (uint32_t a : g_.rule_alts[r])
                for (uint32_t p = a; (g_.elems[p] & Grammar::KIND_MASK) == Grammar::RULE; ++p) {
                    const uint32_t x = g_.elems[p] & ~Grammar::KIND_MASK;
                    edges[r].push_back(x);
                    if (!nullable_[x]) break;
                }
        std::vector<uint8_t> color(n, 0);
        // iterative DFS
        for (size_t s = 0; s < n; ++s) {
            if (color[s]) continue;
            std::vector<std::pair<uint32_t, size_t>> st{{uint32_t(s), 0}};
            color[s] = 1;
            while (!st.empty()) {
                auto& [r, i] = st.back();
                if (i < edges[r].size()) {
                    const uint32_t x = edges[r][i++];
                    if (color[x] == 1)
                        throw GrammarError("grammar: left recursion through rule '" + g_.rule_names[x] +
                                           "' (a rule that can start with itself, or a repetition of "
                                           "something that can be empty)");
                    if (color[x] == 0) {
                        color[x] = 1;
                        st.push_back({x, 0});
                    }
                } else {
                    color[r] = 2;
                    st.pop_back();
                }
            }
        }
    }

    void compute_follow() {
        const size_t n = g_.rule_alts.size();
        std::vector<Grammar::ByteSet> class_first(g_.classes.size(), Grammar::ByteSet{});
        for (size_t c = 0; c < g_.classes.size(); ++c)
            for (uint32_t b = 0; b < 256; ++b) {
                uint32_t lo, hi;
                if (lead_range(b, lo, hi) && g_.classes[c].intersects(lo, hi)) byteset_set(class_first[c], uint8_t(b));
            }
        std::vector<Grammar::ByteSet> first(n, Grammar::ByteSet{});
        // FIRST of the elements from p on; returns whether they can all be empty.
        auto first_of = [&](uint32_t p, Grammar::ByteSet& out) {
            for (;; ++p) {
                const uint32_t e = g_.elems[p];
                const uint32_t k = e & Grammar::KIND_MASK, v = e & ~Grammar::KIND_MASK;
                if (k == Grammar::END) return true;
                if (k == Grammar::CHAR) {
                    byteset_or(out, class_first[v]);
                    return false;
                }
                byteset_or(out, first[v]);
                if (!nullable_[v]) return false;
            }
        };
        for (bool changed = true; changed;) {
            changed = false;
            for (size_t r = 0; r < n; ++r)
                for (uint32_t a : g_.rule_alts[r]) {
                    Grammar::ByteSet s = first[r];
                    first_of(a, s);
                    if (s != first[r]) {
                        first[r] = s;
                        changed = true;
                    }
                }
        }
        g_.follow.assign(n, Grammar::ByteSet{});
        for (bool changed = true; changed;) {
            changed = false;
            for (size_t r = 0; r < n; ++r)
                for (uint32_t a : g_.rule_alts[r])
                    for (uint32_t p = a; (g_.elems[p] & Grammar::KIND_MASK) != Grammar::END; ++p) {
                        const uint32_t e = g_.elems[p];
                        if ((e & Grammar::KIND_MASK) != Grammar::RULE) continue;
                        const uint32_t b = e & ~Grammar::KIND_MASK;
                        Grammar::ByteSet s{};
                        if (first_of(p + 1, s)) byteset_or(s, g_.follow[r]);
                        changed |= byteset_or(g_.follow[b], s);
                    }
        }
    }

    const std::map<std::string, GExprPtr>& src_;
    Grammar& g_;
    std::vector<Alts> alts_;
    std::vector<std::string> names_;
    std::map<std::string, uint32_t> named_;
    std::map<Ranges, uint32_t> class_ids_;
    std::unordered_map<const GExpr*, int> refs_;
    std::map<std::pair<const GExpr*, Seq>, uint32_t> memo_;
    std::vector<bool> nullable_;
    std::string cur_name_;
    int counter_ = 0;
    size_t total_ = 0;
};

}  // namespace

std::shared_ptr<const Grammar> Grammar::build(const std::map<std::string, GExprPtr>& rules, const std::string& root) {
    auto g = std::make_shared<Grammar>();
    Compiler(rules, *g).run(root);
    return g;
}

std::shared_ptr<const Grammar> Grammar::parse(std::string_view text, const std::string& root) {
    return build(GbnfParser(text).parse(), root);
}

std::string Grammar::dump() const {
    std::string out;
    for (size_t r = 0; r < rule_alts.size(); ++r) {
        out += rule_names[r] + " ::=";
        for (size_t a = 0; a < rule_alts[r].size(); ++a) {
            if (a) out += " |";
            uint32_t p = rule_alts[r][a];
            if ((elems[p] & KIND_MASK) == END) out += " \"\"";
            for (; (elems[p] & KIND_MASK) != END; ++p) {
                const uint32_t v = elems[p] & ~KIND_MASK;
                if ((elems[p] & KIND_MASK) == RULE) {
                    out += " " + rule_names[v];
                    continue;
                }
                const auto& rg = classes[v].ranges;
                if (rg.size() == 1 && rg[0].first == rg[0].second) {
                    out += " \"" + cp_text(rg[0].first, false) + "\"";
                    continue;
                }
                out += " [";
                for (const auto& [lo, hi] : rg) {
                    out += cp_text(lo, true);
                    if (hi != lo) out += "-" + cp_text(hi, true);
                }
                out += "]";
            }
        }
        out += "\n";
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary and trie

TokenVocab::TokenVocab(std::vector<std::string> pieces, std::vector<int32_t> eog)
    : pieces_(std::move(pieces)), eog_(std::move(eog)) {
    std::vector<int32_t> ids;
    for (int32_t i = 0; i < int32_t(pieces_.size()); ++i)
        if (!pieces_[size_t(i)].empty()) ids.push_back(i);
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
        const int c = pieces_[size_t(a)].compare(pieces_[size_t(b)]);
        return c < 0 || (c == 0 && a < b);
    });
    std::vector<uint32_t> open;
    const std::string* prev = nullptr;
    for (int32_t id : ids) {
        const std::string& p = pieces_[size_t(id)];
        if (p.size() > 65535) continue;
        size_t l = 0;
        if (prev)
            while (l < p.size() && l < prev->size() && p[l] == (*prev)[l]) ++l;
        if (prev && l == p.size() && l == prev->size()) {
            toks_.push_back(id);
            nodes_[open.back()].tok_end = uint32_t(toks_.size());
            continue;
        }
        while (open.size() > l) {
            nodes_[open.back()].end = uint32_t(nodes_.size());
            open.pop_back();
        }
        for (size_t d = l; d < p.size(); ++d) {
            Node n{};
            n.tok_begin = n.tok_end = uint32_t(toks_.size());
            n.depth = uint16_t(d + 1);
            n.byte = uint8_t(p[d]);
            open.push_back(uint32_t(nodes_.size()));
            nodes_.push_back(n);
        }
        toks_.push_back(id);
        nodes_.back().tok_end = uint32_t(toks_.size());
        prev = &p;
    }
    while (!open.empty()) {
        nodes_[open.back()].end = uint32_t(nodes_.size());
        open.pop_back();
    }
}

std::shared_ptr<const TokenVocab> TokenVocab::from_tokenizer(const Tokenizer& tok) {
    std::vector<std::string> pieces(size_t(tok.n_vocab()));
    for (int32_t i = 0; i < tok.n_vocab(); ++i) pieces[size_t(i)] = tok.token_to_piece(i, false);
    return std::make_shared<TokenVocab>(std::move(pieces), tok.eog_ids());
}

size_t TokenMask::count() const {
    size_t n = 0;
    for (uint64_t w : bits) n += size_t(__builtin_popcountll(w));
    return n;
}

// ---------------------------------------------------------------------------------------------
// Stacks

StackArena::StackArena() {
    nodes_ = {0xFFFFFFFFull | (0xFFFFFFFFull << 32), 0xFFFFFFFEull | (0xFFFFFFFEull << 32)};
    table_.assign(1024, 0);
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

void StackArena::grow() {
    std::vector<uint32_t> t(table_.size() * 2, 0);
    const size_t mask = t.size() - 1;
    for (uint32_t id = 2; id < nodes_.size(); ++id) {
        size_t h = mix64(nodes_[id]) & mask;
        while (t[h]) h = (h + 1) & mask;
        t[h] = id + 1;
    }
    table_.swap(t);
}

uint32_t StackArena::intern(uint32_t pos, uint32_t parent) {
    const uint64_t key = uint64_t(pos) | (uint64_t(parent) << 32);
    const size_t mask = table_.size() - 1;
    size_t h = mix64(key) & mask;
    while (uint32_t v = table_[h]) {
        if (nodes_[v - 1] == key) return v - 1;
        h = (h + 1) & mask;
    }
    const auto id = uint32_t(nodes_.size());
    nodes_.push_back(key);
    table_[h] = id + 1;
    if (nodes_.size() * 2 > table_.size()) grow();
    return id;
}

// ---------------------------------------------------------------------------------------------
// The byte matcher

namespace {

struct Core {
    const Grammar& g;
    StackArena& a;
    bool popped = false;          // some path completed the unknown stack's frame
    Grammar::ByteSet follow{};    // the bytes that may come after it

    void expand(uint32_t pos, uint32_t parent, std::vector<uint32_t>& out) {
        for (;;) {
            const uint32_t e = g.elems[pos];
            const uint32_t kind = e & Grammar::KIND_MASK;
            if (kind == Grammar::CHAR) {
                out.push_back(a.intern(pos, parent));
                return;
            }
            if (kind == Grammar::END) {
                if (parent == StackArena::kEmpty) {
                    out.push_back(StackArena::kEmpty);
                    return;
                }
                if (parent == StackArena::kUnknown) {
                    popped = true;
                    byteset_or(follow, g.follow[g.elem_rule[pos]]);
                    return;
                }
                pos = a.pos(parent);
                parent = a.parent(parent);
                continue;
            }
            const uint32_t r = e & ~Grammar::KIND_MASK;
            const uint32_t np =
                (g.elems[pos + 1] & Grammar::KIND_MASK) == Grammar::END ? parent : a.intern(pos + 1, parent);
            const auto& alts = g.rule_alts[r];
            for (size_t i = 0; i + 1 < alts.size(); ++i) expand(alts[i], np, out);
            pos = alts.back();
            parent = np;
        }
    }

    static void sort_unique(std::vector<uint32_t>& v) {
        if (v.size() > 1) {
            std::sort(v.begin(), v.end());
            v.erase(std::unique(v.begin(), v.end()), v.end());
        }
    }

    // One byte. Returns whether any path is alive (stacks left, or a path that completed the
    // unknown frame: see popped / follow).
    bool step(const std::vector<uint32_t>& in, uint32_t st, uint8_t b, std::vector<uint32_t>& out, uint32_t& st_out) {
        out.clear();
        popped = false;
        if (in.empty()) return false;
        uint32_t cp = 0, lo = 0, hi = 0;
        const int r = utf8_next(st, b, st_out, cp, lo, hi);
        if (r == 0) return false;
        if (r == 2) {
            for (uint32_t s : in) {
                if (s <= StackArena::kUnknown) continue;
                const uint32_t e = g.elems[a.pos(s)];
                if (g.classes[e & ~Grammar::KIND_MASK].intersects(lo, hi)) out.push_back(s);
            }
            return !out.empty();
        }
        follow = Grammar::ByteSet{};
        for (uint32_t s : in) {
            if (s <= StackArena::kUnknown) continue;
            const uint32_t pos = a.pos(s);
            if (g.classes[g.elems[pos] & ~Grammar::KIND_MASK].contains(cp)) expand(pos + 1, a.parent(s), out);
        }
        sort_unique(out);
        return !out.empty() || popped;
    }

    bool run(std::vector<uint32_t>& cur, uint32_t& st, std::string_view bytes, std::vector<uint32_t>& tmp) {
        for (char c : bytes) {
            uint32_t st2 = 0;
            if (!step(cur, st, uint8_t(c), tmp, st2) || tmp.empty()) return false;
            cur.swap(tmp);
            st = st2;
        }
        return true;
    }
};

struct Level {
    std::vector<uint32_t> stacks;
    uint32_t st = 0;
    Grammar::ByteSet follow{};
    bool popped = false;
    bool unc = false;
};

// Walks the trie from the stacks `init` (partial character st0). Tokens with a live path to their
// end go to `acc`; with `unc` given (init rooted on the unknown stack), tokens that depend on the
// unknown stack go there.
void walk(Core& c, const TokenVocab& v, const std::vector<uint32_t>& init, uint32_t st0, TokenMask& acc,
          std::vector<int32_t>* unc) {
    const auto& nodes = v.nodes();
    const auto& toks = v.node_tokens();
    thread_local std::vector<Level> L;
    if (L.size() < 2) L.resize(64);
    L[0].stacks = init;
    L[0].st = st0;
    L[0].popped = false;
    L[0].unc = false;
    const auto N = uint32_t(nodes.size());
    for (uint32_t i = 0; i < N;) {
        const auto& n = nodes[i];
        if (n.depth + 1u >= L.size()) L.resize(size_t(n.depth) * 2 + 2);
        Level& P = L[n.depth - 1u];
        Level& C = L[n.depth];
        const bool u = P.unc || (P.popped && byteset_has(P.follow, n.byte));
        const bool live = c.step(P.stacks, P.st, n.byte, C.stacks, C.st);
        if (live) {
            C.popped = c.popped;
            C.follow = c.follow;
            C.unc = u;
            for (uint32_t t = n.tok_begin; t < n.tok_end; ++t) acc.set(toks[t]);
            ++i;
            continue;
        }
        if (u && unc)
            for (uint32_t t = n.tok_begin, e = v.subtree_tok_end(i); t < e; ++t) unc->push_back(toks[t]);
        i = n.end;
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The cache

MaskCache::MaskCache(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenVocab> v)
    : g_(std::move(g)), v_(std::move(v)) {}

const MaskCache::Entry& MaskCache::get(uint32_t pos) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(pos);
    if (it != entries_.end()) return *it->second;
    const auto t0 = std::chrono::steady_clock::now();
    auto e = std::make_unique<Entry>();
    Core c{*g_, arena_};
    TokenMask acc;
    acc.reset(v_->size());
    std::vector<uint32_t> init{arena_.intern(pos, StackArena::kUnknown)};
    walk(c, *v_, init, 0, acc, &e->uncertain);
    std::sort(e->uncertain.begin(), e->uncertain.end());
    if (acc.count() < acc.bits.size()) {
        for (size_t w = 0; w < acc.bits.size(); ++w)
            for (uint64_t x = acc.bits[w]; x; x &= x - 1) e->accepted_list.push_back(int32_t(w * 64 + size_t(__builtin_ctzll(x))));
    } else {
        e->accepted_bits = std::move(acc.bits);
    }
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return *entries_.emplace(pos, std::move(e)).first->second;
}

size_t MaskCache::n_entries() {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
}

double MaskCache::build_seconds() {
    std::lock_guard<std::mutex> lock(mu_);
    return seconds_;
}

// ---------------------------------------------------------------------------------------------
// The matcher

Matcher::Matcher(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenVocab> v)
    : Matcher(std::make_shared<MaskCache>(std::move(g), std::move(v))) {}

Matcher::Matcher(std::shared_ptr<MaskCache> cache) : cache_(std::move(cache)), g_(cache_->grammar()), v_(cache_->vocab()) {}

GrammarState Matcher::initial() {
    GrammarState s;
    Core c{*g_, arena_};
    for (uint32_t a : g_->rule_alts[g_->root]) c.expand(a, StackArena::kEmpty, s.stacks);
    Core::sort_unique(s.stacks);
    return s;
}

bool Matcher::accepts(const GrammarState& s, std::string_view bytes) {
    Core c{*g_, arena_};
    tmp_a_ = s.stacks;
    uint32_t st = s.utf8;
    return c.run(tmp_a_, st, bytes, tmp_b_);
}

bool Matcher::advance(GrammarState& s, std::string_view bytes) {
    Core c{*g_, arena_};
    tmp_a_ = s.stacks;
    uint32_t st = s.utf8;
    if (!c.run(tmp_a_, st, bytes, tmp_b_)) return false;
    s.stacks = tmp_a_;
    s.utf8 = st;
    return true;
}

bool Matcher::can_end(const GrammarState& s) const {
    return s.utf8 == 0 && !s.stacks.empty() && s.stacks[0] == StackArena::kEmpty;
}

static bool is_eog(const TokenVocab& v, int32_t id) {
    return std::find(v.eog().begin(), v.eog().end(), id) != v.eog().end();
}

bool Matcher::accepts_token(const GrammarState& s, int32_t id) {
    if (id < 0 || id >= v_->size()) return false;
    if (is_eog(*v_, id)) return can_end(s);
    const std::string& p = v_->piece(id);
    return !p.empty() && accepts(s, p);
}

bool Matcher::advance_token(GrammarState& s, int32_t id) {
    if (id < 0 || id >= v_->size()) return false;
    if (is_eog(*v_, id)) return can_end(s);
    const std::string& p = v_->piece(id);
    return !p.empty() && advance(s, p);
}

void Matcher::fill_mask_bruteforce(const GrammarState& s, TokenMask& m) {
    m.reset(v_->size());
    for (int32_t id = 0; id < v_->size(); ++id)
        if (accepts_token(s, id)) m.set(id);
}

void Matcher::fill_mask_trie(const GrammarState& s, TokenMask& m) {
    m.reset(v_->size());
    Core c{*g_, arena_};
    walk(c, *v_, s.stacks, s.utf8, m, nullptr);
    if (can_end(s))
        for (int32_t id : v_->eog()) m.set(id);
}

void Matcher::fill_mask(const GrammarState& s, TokenMask& m) {
    if (s.utf8 != 0) {
        fill_mask_trie(s, m);
        return;
    }
    m.reset(v_->size());
    thread_local std::vector<const MaskCache::Entry*> ents;
    ents.clear();
    for (uint32_t sid : s.stacks) {
        if (sid <= StackArena::kUnknown) {
            ents.push_back(nullptr);
            continue;
        }
        const MaskCache::Entry& e = cache_->get(arena_.pos(sid));
        ents.push_back(&e);
        if (!e.accepted_bits.empty()) {
            uint64_t* d = m.bits.data();
            const uint64_t* b = e.accepted_bits.data();
            for (size_t w = 0, n = m.bits.size(); w < n; ++w) d[w] |= b[w];
        } else {
            for (int32_t t : e.accepted_list) m.set(t);
        }
    }
    Core c{*g_, arena_};
    for (size_t k = 0; k < s.stacks.size(); ++k) {
        if (!ents[k]) continue;
        for (int32_t t : ents[k]->uncertain) {
            if (m.test(t)) continue;
            tmp_a_.assign(1, s.stacks[k]);
            uint32_t st = 0;
            if (c.run(tmp_a_, st, v_->piece(t), tmp_b_)) m.set(t);
        }
    }
    if (can_end(s))
        for (int32_t id : v_->eog()) m.set(id);
}

void Matcher::apply_mask(const TokenMask& m, float* logits, int32_t n) {
    for (int32_t i = 0; i < n; ++i)
        if (!m.test(i)) logits[i] = -std::numeric_limits<float>::infinity();
}

}  // namespace yiti::sample
