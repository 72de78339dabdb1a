// JSON Schema to grammar rules; see json_schema.h for what is supported.
#include "sample/json_schema.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

namespace yiti::sample {

using ojson = nlohmann::ordered_json;

namespace {

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

std::string esc_pointer(const std::string& k) {
    std::string o;
    for (char c : k) {
        if (c == '~')
            o += "~0";
        else if (c == '/')
            o += "~1";
        else
            o += c;
    }
    return o;
}

[[noreturn]] void unsupported(const std::string& kw, const std::string& path, const std::string& why = "") {
    throw SchemaError(kw, path,
                      "unsupported JSON Schema keyword '" + kw + "' at " + path + (why.empty() ? "" : ": " + why));
}

[[noreturn]] void bad(const std::string& kw, const std::string& path, const std::string& why) {
    throw SchemaError(kw, path, "bad JSON Schema: '" + kw + "' at " + path + ": " + why);
}

Ranges subtract(const Ranges& a, const Ranges& b) {
    // a minus b; both sorted and merged
    Ranges out;
    size_t j = 0;
    for (auto [lo, hi] : a) {
        uint32_t cur = lo;
        while (j < b.size() && b[j].second < cur) ++j;
        size_t k = j;
        bool done = false;
        while (k < b.size() && b[k].first <= hi) {
            if (b[k].first > cur) out.push_back({cur, b[k].first - 1});
            if (b[k].second >= hi) {
                done = true;
                break;
            }
            cur = b[k].second + 1;
            ++k;
        }
        if (!done && cur <= hi) out.push_back({cur, hi});
    }
    return out;
}

bool has(const Ranges& r, uint32_t cp) {
    for (auto [lo, hi] : r)
        if (cp >= lo && cp <= hi) return true;
    return false;
}

// Characters a JSON string may hold unescaped.
const Ranges kSafe = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x10FFFF}};

// A string character in JSON text: any safe character or an escape.
GExprPtr json_char_expr() {
    static const GExprPtr e = gx::alt({gx::chars(kSafe),
                                       gx::seq({gx::lit("\\"), gx::alt({gx::chars({{'"', '"'}, {'\\', '\\'}, {'/', '/'}, {'b', 'b'},
                                                                                {'f', 'f'}, {'n', 'n'}, {'r', 'r'}, {'t', 't'}}),
                                                                      gx::seq({gx::lit("u"), gx::rep(gx::chars({{'0', '9'}, {'a', 'f'}, {'A', 'F'}}), 4, 4)})})})});
    return e;
}

// The characters of `r` as they appear inside a JSON string: unescaped when safe; `"`, `\`, and
// \n \r \t as escapes; other control characters are left out.
GExprPtr json_chars(const Ranges& r) {
    std::vector<GExprPtr> alts;
    Ranges safe;
    for (auto [lo, hi] : r)
        for (auto [slo, shi] : kSafe) {
            const uint32_t a = std::max(lo, slo), b = std::min(hi, shi);
            if (a <= b) safe.push_back({a, b});
        }
    if (!safe.empty()) alts.push_back(gx::chars(safe));
    if (has(r, '"')) alts.push_back(gx::lit("\\\""));
    if (has(r, '\\')) alts.push_back(gx::lit("\\\\"));
    if (has(r, '\n')) alts.push_back(gx::lit("\\n"));
    if (has(r, '\r')) alts.push_back(gx::lit("\\r"));
    if (has(r, '\t')) alts.push_back(gx::lit("\\t"));
    if (alts.empty()) return gx::chars({});  // matches nothing
    return gx::alt(std::move(alts));
}

// ---------------------------------------------------------------------------------------------
// The regex subset

class RegexParser {
public:
    RegexParser(std::string_view s, bool json, std::string path) : s_(s), json_(json), path_(std::move(path)) {}

    GExprPtr parse() {
        // top-level branches, each with its own anchors
        std::vector<GExprPtr> branches;
        for (;;) {
            bool start = false, end = false;
            if (i_ < s_.size() && s_[i_] == '^') {
                start = true;
                ++i_;
            }
            std::vector<GExprPtr> items = parse_items(true, end);
            if (!start) items.insert(items.begin(), gx::star(any_text()));
            if (!end) items.push_back(gx::star(any_text()));
            branches.push_back(gx::seq(std::move(items)));
            if (i_ >= s_.size()) break;
            if (s_[i_] == '|') {
                ++i_;
                continue;
            }
            fail("unbalanced )");
        }
        return gx::alt(std::move(branches));
    }

private:
    [[noreturn]] void fail(const std::string& why) const {
        throw SchemaError("pattern", path_,
                          "unsupported JSON Schema keyword 'pattern' at " + path_ + ": " + why + " (at offset " +
                              std::to_string(i_) + " of the pattern)");
    }

    GExprPtr any_text() { return json_ ? json_char_expr() : gx::any_char(); }
    GExprPtr mk(const Ranges& r) { return json_ ? json_chars(r) : gx::chars(r); }

    // A sequence up to | or ) or the end; at the top level a final $ sets `end`.
    std::vector<GExprPtr> parse_items(bool top, bool& end) {
        std::vector<GExprPtr> items;
        while (i_ < s_.size() && s_[i_] != '|' && s_[i_] != ')') {
            if (s_[i_] == '$') {
                ++i_;
                if (top && (i_ >= s_.size() || s_[i_] == '|')) {
                    end = true;
                    break;
                }
                fail("$ only at the end of a top-level branch");
            }
            if (s_[i_] == '^') fail("^ only at the start of a top-level branch");
            GExprPtr a = parse_atom();
            items.push_back(parse_quant(a));
        }
        return items;
    }

    GExprPtr parse_alt() {
        std::vector<GExprPtr> alts;
        for (;;) {
            bool end = false;
            alts.push_back(gx::seq(parse_items(false, end)));
            if (i_ < s_.size() && s_[i_] == '|') {
                ++i_;
                continue;
            }
            break;
        }
        return gx::alt(std::move(alts));
    }

    bool read_int(int& v) {
        const size_t b = i_;
        long x = 0;
        while (i_ < s_.size() && isdigit(uint8_t(s_[i_]))) {
            x = x * 10 + (s_[i_] - '0');
            if (x > 10000) fail("repetition count over 10000");
            ++i_;
        }
        v = int(x);
        return i_ > b;
    }

    GExprPtr parse_quant(GExprPtr a) {
        for (;;) {
            if (i_ >= s_.size()) return a;
            const char c = s_[i_];
            int lo = 0, hi = -1;
            if (c == '*') {
                ++i_;
            } else if (c == '+') {
                lo = 1;
                ++i_;
            } else if (c == '?') {
                hi = 1;
                ++i_;
            } else if (c == '{') {
                const size_t save = i_;
                ++i_;
                if (!read_int(lo)) {
                    i_ = save;
                    return a;  // a literal {
                }
                hi = lo;
                if (i_ < s_.size() && s_[i_] == ',') {
                    ++i_;
                    if (!read_int(hi)) hi = -1;
                }
                if (i_ >= s_.size() || s_[i_] != '}') {
                    i_ = save;
                    return a;
                }
                ++i_;
                if (hi >= 0 && hi < lo) fail("{m,n} with n < m");
            } else {
                return a;
            }
            if (i_ < s_.size() && (s_[i_] == '?' || s_[i_] == '+')) ++i_;  // lazy / possessive
            a = gx::rep(a, lo, hi);
        }
    }

    uint32_t utf8_cp() {
        const auto c = uint8_t(s_[i_]);
        const int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
        if (n < 0 || i_ + size_t(n) >= s_.size() + (n == 0)) fail("invalid UTF-8");
        uint32_t cp = c & (0x7F >> n);
        for (int k = 1; k <= n; ++k) cp = (cp << 6) | (uint8_t(s_[i_ + size_t(k)]) & 0x3F);
        i_ += size_t(n) + 1;
        return cp;
    }

    uint32_t hex(int n) {
        uint32_t v = 0;
        for (int k = 0; k < n; ++k) {
            if (i_ >= s_.size() || !isxdigit(uint8_t(s_[i_]))) fail("bad hexadecimal escape");
            const char c = s_[i_++];
            v = v * 16 + uint32_t(isdigit(uint8_t(c)) ? c - '0' : (tolower(c) - 'a' + 10));
        }
        return v;
    }

    static Ranges digit() { return {{'0', '9'}}; }
    static Ranges word() { return {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}; }
    static Ranges space() { return {{'\t', '\r'}, {' ', ' '}, {0xA0, 0xA0}, {0x2028, 0x2029}, {0xFEFF, 0xFEFF}}; }
    static Ranges neg(Ranges r) { return gx::chars(std::move(r), true)->ranges; }

    // An escape after '\': a class (returns true, r filled) or a single character (cp).
    bool parse_escape(Ranges& r, uint32_t& cp, bool in_class) {
        if (i_ >= s_.size()) fail("pattern ends with \\");
        const char c = s_[i_++];
        switch (c) {
            case 'd': r = digit(); return true;
            case 'D': r = neg(digit()); return true;
            case 'w': r = word(); return true;
            case 'W': r = neg(word()); return true;
            case 's': r = space(); return true;
            case 'S': r = neg(space()); return true;
            case 'n': cp = '\n'; return false;
            case 'r': cp = '\r'; return false;
            case 't': cp = '\t'; return false;
            case 'f': cp = '\f'; return false;
            case 'v': cp = '\v'; return false;
            case '0': cp = 0; return false;
            case 'x': cp = hex(2); return false;
            case 'u':
                if (i_ < s_.size() && s_[i_] == '{') {
                    ++i_;
                    cp = 0;
                    while (i_ < s_.size() && s_[i_] != '}') cp = cp * 16 + hex(1);
                    ++i_;
                } else {
                    cp = hex(4);
                }
                return false;
            case 'b':
                if (in_class) {
                    cp = '\b';
                    return false;
                }
                fail("word boundaries (\\b) are not supported");
            default: break;
        }
        if (isalnum(uint8_t(c))) fail(std::string("the escape \\") + c + " is not supported");
        --i_;
        cp = utf8_cp();
        return false;
    }

    GExprPtr parse_atom() {
        const char c = s_[i_];
        if (c == '(') {
            ++i_;
            if (i_ < s_.size() && s_[i_] == '?') {
                ++i_;
                if (i_ < s_.size() && s_[i_] == ':') {
                    ++i_;
                } else if (i_ + 1 < s_.size() && s_[i_] == '<' && s_[i_ + 1] != '=' && s_[i_ + 1] != '!') {
                    while (i_ < s_.size() && s_[i_] != '>') ++i_;
                    ++i_;
                } else {
                    fail("lookaround and other (? groups are not supported");
                }
            }
            GExprPtr e = parse_alt();
            if (i_ >= s_.size() || s_[i_] != ')') fail("missing )");
            ++i_;
            return e;
        }
        if (c == '[') {
            ++i_;
            bool negate = false;
            if (i_ < s_.size() && s_[i_] == '^') {
                negate = true;
                ++i_;
            }
            Ranges r;
            bool first = true;
            for (;;) {
                if (i_ >= s_.size()) fail("missing ]");
                if (s_[i_] == ']' && !first) {
                    ++i_;
                    break;
                }
                first = false;
                uint32_t lo;
                if (s_[i_] == '\\') {
                    ++i_;
                    Ranges cls;
                    if (parse_escape(cls, lo, true)) {
                        r.insert(r.end(), cls.begin(), cls.end());
                        continue;
                    }
                } else {
                    lo = utf8_cp();
                }
                uint32_t hi = lo;
                if (i_ + 1 < s_.size() && s_[i_] == '-' && s_[i_ + 1] != ']') {
                    ++i_;
                    if (s_[i_] == '\\') {
                        ++i_;
                        Ranges cls;
                        if (parse_escape(cls, hi, true)) fail("a class escape as the end of a range");
                    } else {
                        hi = utf8_cp();
                    }
                    if (hi < lo) fail("a range out of order");
                }
                r.push_back({lo, hi});
            }
            Ranges n = gx::chars(r, negate)->ranges;
            return mk(n);
        }
        if (c == '.') {
            ++i_;
            return mk(neg({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}));
        }
        if (c == '\\') {
            ++i_;
            Ranges r;
            uint32_t cp;
            if (parse_escape(r, cp, false)) return mk(gx::chars(r)->ranges);
            return mk({{cp, cp}});
        }
        if (c == '*' || c == '+' || c == '?') fail("nothing to repeat");
        const uint32_t cp = utf8_cp();
        return mk({{cp, cp}});
    }

    std::string_view s_;
    bool json_;
    std::string path_;
    size_t i_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Integer ranges as digit grammars

GExprPtr digits(int n) { return n == 0 ? gx::empty() : gx::rep(gx::chars({{'0', '9'}}), n, n); }

// Digit strings of equal length between x and y (inclusive, x <= y).
GExprPtr same_len(const std::string& x, const std::string& y) {
    if (x == y) return gx::lit(x);
    if (x[0] == y[0]) return gx::seq({gx::lit(x.substr(0, 1)), same_len(x.substr(1), y.substr(1))});
    const int n = int(x.size()) - 1;
    std::vector<GExprPtr> alts;
    char full_lo = x[0], full_hi = y[0];
    if (x.find_first_not_of('0', 1) != std::string::npos) {
        alts.push_back(gx::seq({gx::lit(x.substr(0, 1)), same_len(x.substr(1), std::string(size_t(n), '9'))}));
        ++full_lo;
    }
    if (y.find_first_not_of('9', 1) != std::string::npos) {
        alts.push_back(gx::seq({gx::lit(y.substr(0, 1)), same_len(std::string(size_t(n), '0'), y.substr(1))}));
        --full_hi;
    }
    if (full_lo <= full_hi) alts.push_back(gx::seq({gx::chars({{uint32_t(full_lo), uint32_t(full_hi)}}), digits(n)}));
    return gx::alt(std::move(alts));
}

// Non-negative integers in [a, b] without leading zeros.
GExprPtr uint_range(uint64_t a, uint64_t b) {
    std::vector<GExprPtr> alts;
    const std::string sa = std::to_string(a), sb = std::to_string(b);
    for (size_t len = sa.size(); len <= sb.size(); ++len) {
        uint64_t lo = len == 1 ? 0 : 1;
        for (size_t k = 1; k < len; ++k) lo *= 10;
        std::string slo = std::to_string(std::max(lo, a));
        std::string shi = len == sb.size() ? sb : std::string(len, '9');
        alts.push_back(same_len(slo, shi));
    }
    return gx::alt(std::move(alts));
}

}  // namespace

GExprPtr regex_to_expr(std::string_view pattern, const std::string& path) {
    return RegexParser(pattern, false, path).parse();
}

// ---------------------------------------------------------------------------------------------
// The compiler

struct JsonSchemaCompiler::Impl {
    JsonSchemaOptions o;
    std::string prefix;
    std::map<std::string, GExprPtr> rules;
    GExprPtr ws;
    const ojson* root = nullptr;
    std::map<std::string, std::string> ref_rules;  // "$ref" string -> rule name
    int n_named = 0;

    Impl(JsonSchemaOptions opt, std::string p) : o(opt), prefix(std::move(p)) {
        ws = gx::opt(gx::alt({gx::lit(" "), gx::seq({gx::lit("\n"), gx::rep(gx::chars({{' ', ' '}, {'\t', '\t'}}), 0, o.max_indent)})}));
    }

    std::string helper(const std::string& what) {
        const std::string name = prefix + "json-" + what;
        if (rules.count(name)) return name;
        rules[name] = gx::empty();  // placeholder (recursion)
        GExprPtr e;
        if (what == "string") {
            e = gx::seq({gx::lit("\""), gx::star(json_char_expr()), gx::lit("\"")});
        } else if (what == "number") {
            e = number_expr(true, true);
        } else if (what == "value") {
            e = gx::alt({gx::ref(helper("object")), gx::ref(helper("array")), gx::ref(helper("string")),
                         gx::ref(helper("number")), gx::lit("true"), gx::lit("false"), gx::lit("null")});
        } else if (what == "object") {
            GExprPtr pair = gx::seq({gx::ref(helper("string")), ws, gx::lit(":"), ws, gx::ref(helper("value")), ws});
            e = gx::seq({gx::lit("{"), ws, gx::opt(gx::seq({pair, gx::star(gx::seq({gx::lit(","), ws, pair}))})), gx::lit("}")});
        } else if (what == "array") {
            GExprPtr item = gx::seq({gx::ref(helper("value")), ws});
            e = gx::seq({gx::lit("["), ws, gx::opt(gx::seq({item, gx::star(gx::seq({gx::lit(","), ws, item}))})), gx::lit("]")});
        }
        rules[name] = e;
        return name;
    }

    GExprPtr int_digits() {
        return gx::alt({gx::lit("0"), gx::seq({gx::chars({{'1', '9'}}), gx::rep(gx::chars({{'0', '9'}}), 0, o.max_int_digits - 1)})});
    }

    GExprPtr number_expr(bool allow_neg, bool allow_exp) {
        std::vector<GExprPtr> items;
        if (allow_neg) items.push_back(gx::opt(gx::lit("-")));
        items.push_back(int_digits());
        items.push_back(gx::opt(gx::seq({gx::lit("."), gx::rep(gx::chars({{'0', '9'}}), 1, o.max_frac_digits)})));
        if (allow_exp)
            items.push_back(gx::opt(gx::seq({gx::chars({{'e', 'e'}, {'E', 'E'}}), gx::opt(gx::chars({{'+', '+'}, {'-', '-'}})),
                                             gx::rep(gx::chars({{'0', '9'}}), 1, 3)})));
        return gx::seq(std::move(items));
    }

    // ---- schema walking ----

    static bool is_annotation(const std::string& k) {
        static const std::set<std::string> a = {"$schema", "$id", "id", "title", "description", "default", "examples",
                                                "$comment", "deprecated", "readOnly", "writeOnly", "$defs",
                                                "definitions", "$anchor", "contentMediaType", "contentEncoding"};
        return a.count(k) > 0;
    }

    static bool is_supported(const std::string& k) {
        static const std::set<std::string> s = {
            "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems",
            "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern", "format", "minimum",
            "maximum", "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref", "nullable"};
        return s.count(k) > 0;
    }

    GExprPtr any_value() { return gx::ref(helper("value")); }

    GExprPtr literal_value(const ojson& v) { return gx::lit(v.dump(-1, ' ', false, ojson::error_handler_t::replace)); }

    GExprPtr visit(const ojson& s, const std::string& path) {
        if (s.is_boolean()) {
            if (s.get<bool>()) return any_value();
            bad("false", path, "the schema false matches nothing");
        }
        if (!s.is_object()) bad("schema", path, "a schema must be an object or a boolean");
        std::vector<std::string> validation;
        for (auto it = s.begin(); it != s.end(); ++it) {
            if (is_annotation(it.key())) continue;
            if (!is_supported(it.key())) unsupported(it.key(), path);
            validation.push_back(it.key());
        }
        auto only = [&](const std::string& kw, std::initializer_list<const char*> allowed) {
            for (const auto& k : validation) {
                if (k == kw) continue;
                bool ok = false;
                for (const char* a : allowed) ok |= k == a;
                if (!ok) unsupported(k, path, "together with '" + kw + "'");
            }
        };
        if (s.contains("nullable") && s["nullable"].is_boolean() && s["nullable"].get<bool>()) {
            ojson c = s;
            c.erase("nullable");
            return gx::alt({visit(c, path), gx::lit("null")});
        }
        if (s.contains("$ref")) {
            only("$ref", {"nullable"});
            return ref(s["$ref"], path);
        }
        if (s.contains("allOf")) {
            only("allOf", {});
            const ojson& a = s["allOf"];
            if (!a.is_array() || a.size() != 1) unsupported("allOf", path, "only allOf with one schema is supported");
            return visit(a[0], path + "/allOf/0");
        }
        for (const char* kw : {"anyOf", "oneOf"}) {
            if (!s.contains(kw)) continue;
            only(kw, {});
            const ojson& a = s[kw];
            if (!a.is_array() || a.empty()) bad(kw, path, "must be a non-empty array");
            std::vector<GExprPtr> alts;
            for (size_t i = 0; i < a.size(); ++i) alts.push_back(visit(a[i], path + "/" + kw + "/" + std::to_string(i)));
            return gx::alt(std::move(alts));
        }
        if (s.contains("const")) {
            only("const", {"type"});
            return literal_value(s["const"]);
        }
        if (s.contains("enum")) {
            only("enum", {"type", "minLength", "maxLength", "pattern", "format", "minimum", "maximum"});
            const ojson& a = s["enum"];
            if (!a.is_array() || a.empty()) bad("enum", path, "must be a non-empty array");
            std::vector<GExprPtr> alts;
            for (const auto& v : a)
                if (!s.contains("type") || type_matches(s["type"], v)) alts.push_back(literal_value(v));
            if (alts.empty()) bad("enum", path, "no value of the allowed type");
            return gx::alt(std::move(alts));
        }
        std::vector<std::string> types;
        if (s.contains("type")) {
            const ojson& t = s["type"];
            if (t.is_string()) {
                types.push_back(t.get<std::string>());
            } else if (t.is_array() && !t.empty()) {
                for (const auto& x : t) {
                    if (!x.is_string()) bad("type", path, "must be a name or a list of names");
                    types.push_back(x.get<std::string>());
                }
            } else {
                bad("type", path, "must be a name or a list of names");
            }
        } else {
            auto any_of = [&](std::initializer_list<const char*> ks) {
                for (const char* k : ks)
                    if (s.contains(k)) return true;
                return false;
            };
            if (any_of({"properties", "additionalProperties", "required"})) types.push_back("object");
            else if (any_of({"items", "prefixItems", "minItems", "maxItems", "uniqueItems"})) types.push_back("array");
            else if (any_of({"minLength", "maxLength", "pattern", "format"})) types.push_back("string");
            else if (any_of({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})) types.push_back("number");
            else return any_value();
        }
        std::vector<GExprPtr> alts;
        for (const auto& t : types) alts.push_back(visit_type(s, t, path));
        return gx::alt(std::move(alts));
    }

    static bool type_matches(const ojson& t, const ojson& v) {
        auto one = [&](const std::string& n) {
            if (n == "string") return v.is_string();
            if (n == "integer") return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
            if (n == "number") return v.is_number();
            if (n == "boolean") return v.is_boolean();
            if (n == "null") return v.is_null();
            if (n == "object") return v.is_object();
            if (n == "array") return v.is_array();
            return false;
        };
        if (t.is_string()) return one(t.get<std::string>());
        if (t.is_array())
            for (const auto& x : t)
                if (x.is_string() && one(x.get<std::string>())) return true;
        return false;
    }

    GExprPtr ref(const ojson& r, const std::string& path) {
        if (!r.is_string()) bad("$ref", path, "must be a string");
        const std::string target = r.get<std::string>();
        auto it = ref_rules.find(target);
        if (it != ref_rules.end()) return gx::ref(it->second);
        if (target.empty() || target[0] != '#') unsupported("$ref", path, "only references within the schema (#...) are supported: " + target);
        const ojson* node = nullptr;
        try {
            node = &root->at(ojson::json_pointer(target.substr(1)));
        } catch (const std::exception&) {
            bad("$ref", path, "cannot resolve " + target);
        }
        std::string base = target.substr(target.rfind('/') + 1);
        for (char& c : base)
            if (!isalnum(uint8_t(c)) && c != '-') c = '-';
        const std::string name = prefix + "ref" + std::to_string(++n_named) + (base.empty() ? "" : "-" + base);
        ref_rules[target] = name;
        rules[name] = gx::empty();
        rules[name] = visit(*node, target);
        return gx::ref(name);
    }

    static bool get_count(const ojson& s, const char* kw, const std::string& path, int64_t& out) {
        if (!s.contains(kw)) return false;
        const ojson& v = s[kw];
        if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
            out = v.get<int64_t>();
        } else if (v.is_number_float() && v.get<double>() >= 0 && std::floor(v.get<double>()) == v.get<double>()) {
            out = int64_t(v.get<double>());
        } else {
            bad(kw, path, "must be a non-negative integer");
        }
        if (out > 10000) unsupported(kw, path, "values over 10000 are not supported");
        return true;
    }

    GExprPtr visit_type(const ojson& s, const std::string& t, const std::string& path) {
        if (t == "null") return gx::lit("null");
        if (t == "boolean") return gx::alt({gx::lit("true"), gx::lit("false")});
        if (t == "integer") return integer(s, path);
        if (t == "number") return number(s, path);
        if (t == "string") return string(s, path);
        if (t == "array") return array(s, path);
        if (t == "object") return object(s, path);
        bad("type", path, "unknown type '" + t + "'");
    }

    GExprPtr integer(const ojson& s, const std::string& path) {
        // bounds as (possibly absent) integers
        bool has_lo = false, has_hi = false;
        long double lo = 0, hi = 0;
        for (const char* kw : {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"}) {
            if (!s.contains(kw)) continue;
            const ojson& v = s[kw];
            if (!v.is_number()) bad(kw, path, "must be a number");
            const long double x = v.get<long double>();
            const std::string k = kw;
            if (k == "minimum" || k == "exclusiveMinimum") {
                const long double b = k == "minimum" ? std::ceil(x) : std::floor(x) + 1;
                lo = has_lo ? std::max(lo, b) : b;
                has_lo = true;
            } else {
                const long double b = k == "maximum" ? std::floor(x) : std::ceil(x) - 1;
                hi = has_hi ? std::min(hi, b) : b;
                has_hi = true;
            }
        }
        if (!has_lo && !has_hi) return gx::seq({gx::opt(gx::lit("-")), int_digits()});
        const long double lim = 9.2e18L;
        if ((has_lo && std::fabs(lo) > lim) || (has_hi && std::fabs(hi) > lim))
            unsupported(has_lo && std::fabs(lo) > lim ? "minimum" : "maximum", path, "bounds beyond 64-bit integers");
        uint64_t cap = 9;
        for (int k = 1; k < std::min(o.max_int_digits, 19); ++k) cap = cap * 10 + 9;
        const auto ilo = int64_t(lo), ihi = int64_t(hi);
        if (has_lo && has_hi && ilo > ihi) bad("minimum", path, "no integer lies between the bounds");
        std::vector<GExprPtr> alts;
        // negative part: [lo, min(hi, -1)]
        if (!has_lo || ilo < 0) {
            const uint64_t amax = has_lo ? uint64_t(-(ilo + 1)) + 1 : cap;                        // |lo|
            const uint64_t amin = has_hi ? (ihi >= 0 ? 1 : uint64_t(-(ihi + 1)) + 1) : 1;          // |min(hi,-1)|
            if (amin <= amax) alts.push_back(gx::seq({gx::lit("-"), uint_range(amin, amax)}));
        }
        if (!has_hi || ihi >= 0) {
            const uint64_t a = has_lo && ilo > 0 ? uint64_t(ilo) : 0;
            const uint64_t b = has_hi ? uint64_t(ihi) : std::max(cap, a);
            if (a <= b) alts.push_back(uint_range(a, b));
        }
        return gx::alt(std::move(alts));
    }

    GExprPtr number(const ojson& s, const std::string& path) {
        bool nonneg = false, pos = false, nonpos = false, neg = false;
        for (const char* kw : {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"}) {
            if (!s.contains(kw)) continue;
            const ojson& v = s[kw];
            if (!v.is_number()) bad(kw, path, "must be a number");
            if (v.get<double>() != 0) unsupported(kw, path, "a number bound other than 0 (use type integer for other bounds)");
            const std::string k = kw;
            if (k == "minimum") nonneg = true;
            if (k == "exclusiveMinimum") pos = true;
            if (k == "maximum") nonpos = true;
            if (k == "exclusiveMaximum") neg = true;
        }
        if (!nonneg && !pos && !nonpos && !neg) return number_expr(true, true);
        if ((nonneg || pos) && (nonpos || neg)) {
            if (nonneg && nonpos) return gx::alt({gx::lit("0"), gx::lit("0.0")});
            bad("minimum", path, "no number lies between the bounds");
        }
        GExprPtr d09 = gx::chars({{'0', '9'}});
        const int F = o.max_frac_digits;
        // positive: [1-9]d*(.d+)? | 0.d*[1-9]d*  (no exponent)
        GExprPtr frac = gx::opt(gx::seq({gx::lit("."), gx::rep(d09, 1, F)}));
        GExprPtr positive = gx::alt(
            {gx::seq({gx::chars({{'1', '9'}}), gx::rep(d09, 0, o.max_int_digits - 1), frac}),
             gx::seq({gx::lit("0."), gx::rep(d09, 0, F / 2), gx::chars({{'1', '9'}}), gx::rep(d09, 0, F / 2)})});
        GExprPtr zero = gx::seq({gx::lit("0"), gx::opt(gx::seq({gx::lit("."), gx::rep(gx::lit("0"), 1, F)}))});
        if (pos) return positive;
        if (nonneg) return gx::alt({zero, positive});
        if (neg) return gx::seq({gx::lit("-"), positive});
        return gx::alt({zero, gx::seq({gx::lit("-"), positive})});
    }

    GExprPtr string(const ojson& s, const std::string& path) {
        int64_t mn = 0, mx = -1;
        const bool has_min = get_count(s, "minLength", path, mn);
        const bool has_max = get_count(s, "maxLength", path, mx);
        if (has_min && has_max && mx < mn) bad("maxLength", path, "smaller than minLength");
        if (s.contains("pattern") && s.contains("format")) unsupported("format", path, "together with 'pattern'");
        GExprPtr body;
        if (s.contains("pattern") || s.contains("format")) {
            if (has_min || has_max) unsupported(has_min ? "minLength" : "maxLength", path, s.contains("pattern") ? "together with 'pattern'" : "together with 'format'");
            std::string re;
            if (s.contains("pattern")) {
                if (!s["pattern"].is_string()) bad("pattern", path, "must be a string");
                re = s["pattern"].get<std::string>();
            } else {
                if (!s["format"].is_string()) bad("format", path, "must be a string");
                const std::string f = s["format"].get<std::string>();
                const std::string date = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])";
                const std::string time = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
                if (f == "date") re = "^" + date + "$";
                else if (f == "time") re = "^" + time + "$";
                else if (f == "date-time") re = "^" + date + "T" + time + "$";
                else if (f == "uuid") re = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
                else if (f == "email") re = "^[a-zA-Z0-9._%+-]{1,64}@[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?){0,8}$";
                else if (f == "ipv4") re = "^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$";
                else unsupported("format", path, "the format '" + f + "' (supported: date, time, date-time, uuid, email, ipv4)");
            }
            body = RegexParser(re, true, path).parse();
        } else if (!has_min && !has_max) {
            return gx::ref(helper("string"));
        } else {
            body = gx::rep(json_char_expr(), int(mn), has_max ? int(mx) : -1);
        }
        return gx::seq({gx::lit("\""), body, gx::lit("\"")});
    }

    GExprPtr array(const ojson& s, const std::string& path) {
        int64_t mn = 0, mx = -1;
        get_count(s, "minItems", path, mn);
        const bool has_max = get_count(s, "maxItems", path, mx);
        if (has_max && mx < mn) bad("maxItems", path, "smaller than minItems");
        if (s.contains("uniqueItems") && !(s["uniqueItems"].is_boolean() && !s["uniqueItems"].get<bool>()))
            unsupported("uniqueItems", path, "uniqueItems: true cannot be expressed in a grammar");
        std::vector<GExprPtr> prefix_items;
        if (s.contains("prefixItems")) {
            const ojson& p = s["prefixItems"];
            if (!p.is_array()) bad("prefixItems", path, "must be an array");
            for (size_t i = 0; i < p.size(); ++i) prefix_items.push_back(visit(p[i], path + "/prefixItems/" + std::to_string(i)));
        }
        GExprPtr item;  // null: no further items
        if (s.contains("items")) {
            const ojson& it = s["items"];
            if (it.is_array()) unsupported("items", path, "an array of schemas (use prefixItems)");
            if (!(it.is_boolean() && !it.get<bool>())) item = visit(it, path + "/items");
        } else {
            item = any_value();
        }
        const auto k = int64_t(prefix_items.size());
        if (!item) {
            if (mn > k) bad("minItems", path, "more than the items allowed");
            if (!has_max || mx > k) mx = k;
        }
        if (has_max && mx == 0) return gx::seq({gx::lit("["), ws, gx::lit("]")});
        // element j (0-based) as text: (j ? "," ws : "") value ws
        auto elem = [&](const GExprPtr& v, bool first) {
            return first ? gx::seq({v, ws}) : gx::seq({gx::lit(","), ws, v, ws});
        };
        // the items after the prefix: count in [rmin, rmax]
        GExprPtr rest = gx::empty();
        if (item) {
            const int64_t rmin = std::max<int64_t>(0, mn - k);
            const int64_t rmax = mx < 0 ? -1 : mx - k;
            if (rmax != 0) {
                if (k > 0) {
                    rest = gx::rep(elem(item, false), int(rmin), int(rmax));
                } else {
                    // first item without a comma
                    GExprPtr more = gx::rep(elem(item, false), int(std::max<int64_t>(0, rmin - 1)), rmax < 0 ? -1 : int(rmax - 1));
                    GExprPtr some = gx::seq({elem(item, true), more});
                    rest = rmin >= 1 ? some : gx::opt(some);
                }
            }
        }
        // prefix items, each optional beyond minItems (an optional one makes all after it optional)
        GExprPtr tail = rest;
        for (int64_t j = k - 1; j >= 0; --j) {
            GExprPtr e = gx::seq({elem(prefix_items[size_t(j)], j == 0), tail});
            tail = j >= mn ? gx::opt(e) : e;
        }
        return gx::seq({gx::lit("["), ws, tail, gx::lit("]")});
    }

    // JSON string content not equal to any of `words`, as JSON text without the quotes.
    GExprPtr string_not_in(const std::vector<std::string>& words) {
        struct TNode {
            std::map<uint32_t, std::unique_ptr<TNode>> kids;
            bool word = false;
        };
        TNode root_node;
        for (const auto& w : words) {
            TNode* n = &root_node;
            for (size_t i = 0; i < w.size();) {
                uint32_t cp;
                const auto c = uint8_t(w[i]);
                const int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
                cp = len == 1 ? c : c & (0x7F >> len);
                for (int k = 1; k < len && i + size_t(k) < w.size(); ++k) cp = (cp << 6) | (uint8_t(w[i + size_t(k)]) & 0x3F);
                i += size_t(len);
                auto& kid = n->kids[cp];
                if (!kid) kid = std::make_unique<TNode>();
                n = kid.get();
            }
            n->word = true;
        }
        GExprPtr any_rest = gx::star(json_char_expr());
        std::function<GExprPtr(const TNode&)> build = [&](const TNode& n) -> GExprPtr {
            std::vector<GExprPtr> alts;
            Ranges used;
            for (const auto& [cp, kid] : n.kids) {
                alts.push_back(gx::seq({json_chars({{cp, cp}}), build(*kid)}));
                used.push_back({cp, cp});
            }
            // a different character (escapes other than the ones above count as different)
            const Ranges other = subtract({{0x20, 0x10FFFF}}, gx::chars(used)->ranges);
            std::vector<GExprPtr> first;
            first.push_back(json_chars(other));
            if (!has(gx::chars(used)->ranges, '/')) first.push_back(gx::lit("\\/"));
            first.push_back(gx::lit("\\b"));
            first.push_back(gx::lit("\\f"));
            first.push_back(gx::seq({gx::lit("\\u"), gx::rep(gx::chars({{'0', '9'}, {'a', 'f'}, {'A', 'F'}}), 4, 4)}));
            if (!has(gx::chars(used)->ranges, '\n')) first.push_back(gx::lit("\\n"));
            if (!has(gx::chars(used)->ranges, '\r')) first.push_back(gx::lit("\\r"));
            if (!has(gx::chars(used)->ranges, '\t')) first.push_back(gx::lit("\\t"));
            alts.push_back(gx::seq({gx::alt(std::move(first)), any_rest}));
            if (!n.word) alts.push_back(gx::empty());
            return gx::alt(std::move(alts));
        };
        return build(root_node);
    }

    GExprPtr object(const ojson& s, const std::string& path) {
        for (const char* kw : {"minProperties", "maxProperties", "patternProperties", "propertyNames"})
            if (s.contains(kw)) unsupported(kw, path);
        std::vector<std::pair<std::string, const ojson*>> props;
        static const ojson kAny = ojson::object();
        if (s.contains("properties")) {
            const ojson& p = s["properties"];
            if (!p.is_object()) bad("properties", path, "must be an object");
            for (auto it = p.begin(); it != p.end(); ++it) props.push_back({it.key(), &it.value()});
        }
        std::set<std::string> required;
        if (s.contains("required")) {
            const ojson& r = s["required"];
            if (!r.is_array()) bad("required", path, "must be an array of names");
            for (const auto& x : r) {
                if (!x.is_string()) bad("required", path, "must be an array of names");
                required.insert(x.get<std::string>());
                bool found = false;
                for (const auto& pr : props) found |= pr.first == x.get<std::string>();
                if (!found) props.push_back({x.get<std::string>(), &kAny});
            }
        }
        GExprPtr extra_value;  // null: no extra keys
        if (s.contains("additionalProperties")) {
            const ojson& a = s["additionalProperties"];
            if (a.is_boolean()) {
                if (a.get<bool>()) extra_value = any_value();
            } else {
                extra_value = visit(a, path + "/additionalProperties");
            }
        } else if (props.empty()) {
            return gx::ref(helper("object"));
        }
        const size_t n = props.size();
        std::vector<GExprPtr> P(n);
        std::vector<std::string> names;
        for (size_t i = 0; i < n; ++i) {
            const std::string key = ojson(props[i].first).dump(-1, ' ', false, ojson::error_handler_t::replace);
            P[i] = gx::seq({gx::lit(key), ws, gx::lit(":"), ws,
                            visit(*props[i].second, path + "/properties/" + esc_pointer(props[i].first)), ws});
            names.push_back(props[i].first);
        }
        // A[i]: properties i.. after something was written; B[i]: nothing written yet.
        GExprPtr A = gx::empty(), B = gx::empty();
        if (extra_value) {
            GExprPtr E = gx::seq({gx::lit("\""), names.empty() ? gx::star(json_char_expr()) : string_not_in(names),
                                  gx::lit("\""), ws, gx::lit(":"), ws, extra_value, ws});
            GExprPtr more = gx::star(gx::seq({gx::lit(","), ws, E}));
            A = more;
            B = gx::opt(gx::seq({E, more}));
        }
        for (size_t i = n; i-- > 0;) {
            const bool req = required.count(props[i].first) > 0;
            GExprPtr C = gx::seq({gx::lit(","), ws, P[i]});
            GExprPtr newA = req ? gx::seq({C, A}) : gx::seq({gx::opt(C), A});
            GExprPtr newB = req ? gx::seq({P[i], A}) : gx::alt({gx::seq({P[i], A}), B});
            A = newA;
            B = newB;
        }
        return gx::seq({gx::lit("{"), ws, B, gx::lit("}")});
    }
};

JsonSchemaCompiler::JsonSchemaCompiler(JsonSchemaOptions o, std::string prefix)
    : impl_(std::make_unique<Impl>(o, std::move(prefix))) {}
JsonSchemaCompiler::~JsonSchemaCompiler() = default;

std::string JsonSchemaCompiler::add(const ojson& schema, const std::string& name) {
    impl_->root = &schema;
    impl_->ref_rules.clear();
    const std::string rule = impl_->prefix + name;
    if (impl_->rules.count(rule)) throw GrammarError("json schema: rule '" + rule + "' exists already");
    impl_->rules[rule] = gx::empty();
    impl_->rules[rule] = impl_->visit(schema, "#");
    impl_->root = nullptr;
    return rule;
}

std::string JsonSchemaCompiler::add_any_object() { return impl_->helper("object"); }
std::string JsonSchemaCompiler::add_any_value() { return impl_->helper("value"); }
GExprPtr JsonSchemaCompiler::ws() const { return impl_->ws; }
std::map<std::string, GExprPtr>& JsonSchemaCompiler::rules() { return impl_->rules; }

std::shared_ptr<const Grammar> json_schema_grammar(const ojson& schema, const JsonSchemaOptions& o) {
    JsonSchemaCompiler c(o);
    const std::string v = c.add(schema, "value");
    c.rules()["root"] = gx::seq({c.ws(), gx::ref(v), c.ws()});
    return Grammar::build(c.rules(), "root");
}

std::shared_ptr<const Grammar> json_object_grammar(const JsonSchemaOptions& o) {
    JsonSchemaCompiler c(o);
    const std::string v = c.add_any_object();
    c.rules()["root"] = gx::seq({c.ws(), gx::ref(v), c.ws()});
    return Grammar::build(c.rules(), "root");
}

}  // namespace yiti::sample
