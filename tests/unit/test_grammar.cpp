// Grammar engine and JSON Schema compiler: GBNF parsing and errors, UTF-8 handling, hand-written
// valid / invalid documents per schema, random valid documents (accepted byte by byte and token by
// token) and random mutations (whatever the grammar accepts must validate against the schema), and
// the trie / cached vocabulary masks against a brute-force check of every token on stories260K's
// and SmolLM2's vocabularies.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <random>
#include <regex>

#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "sample/grammar.h"
#include "sample/json_schema.h"
#include "tokenizer/tokenizer.h"

using namespace yiti;
using namespace yiti::sample;
using ojson = nlohmann::ordered_json;

namespace {

std::shared_ptr<const TokenVocab> ascii_vocab() {
    std::vector<std::string> p;
    for (int c = 0; c < 128; ++c) p.push_back(std::string(1, char(c)));
    return std::make_shared<TokenVocab>(p, std::vector<int32_t>{0});
}

// Accepts the whole text and may end there.
bool full_match(Matcher& m, std::string_view text) {
    GrammarState s = m.initial();
    return m.advance(s, text) && m.can_end(s);
}

// Same, one byte at a time; also checks that the byte-wise state equals the one-shot state.
bool full_match_bytes(Matcher& m, std::string_view text) {
    GrammarState s = m.initial();
    for (char c : text)
        if (!m.advance(s, std::string_view(&c, 1))) return false;
    GrammarState t = m.initial();
    EXPECT_TRUE(m.advance(t, text));
    EXPECT_TRUE(s == t);
    return m.can_end(s);
}

std::shared_ptr<const Grammar> schema_grammar(const std::string& text) { return json_schema_grammar(ojson::parse(text)); }

// ---------------------------------------------------------------------------------------------
// A validator for the JSON Schema subset (the oracle for the mutation tests).

size_t n_codepoints(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

bool validate(const ojson& v, const ojson& s, const ojson& root);

bool type_ok(const ojson& v, const std::string& t) {
    if (t == "string") return v.is_string();
    if (t == "integer") return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
    if (t == "number") return v.is_number();
    if (t == "boolean") return v.is_boolean();
    if (t == "null") return v.is_null();
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    return false;
}

const std::map<std::string, std::string>& format_res() {
    static const std::map<std::string, std::string> m = {
        {"date", "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"},
        {"uuid", "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
        {"email", "^[^@]+@[^@]+$"},
        {"date-time", "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"},
    };
    return m;
}

bool validate(const ojson& v, const ojson& s, const ojson& root) {
    if (s.is_boolean()) return s.get<bool>();
    if (s.contains("$ref")) return validate(v, root.at(ojson::json_pointer(s["$ref"].get<std::string>().substr(1))), root);
    if (s.value("nullable", false) && v.is_null()) return true;
    if (s.contains("allOf"))
        for (const auto& x : s["allOf"])
            if (!validate(v, x, root)) return false;
    if (s.contains("anyOf")) {
        bool any = false;
        for (const auto& x : s["anyOf"]) any |= validate(v, x, root);
        if (!any) return false;
    }
    if (s.contains("oneOf")) {
        int n = 0;
        for (const auto& x : s["oneOf"]) n += validate(v, x, root);
        if (n != 1) return false;
    }
    if (s.contains("const") && !(v == s["const"])) return false;
    if (s.contains("enum")) {
        bool any = false;
        for (const auto& x : s["enum"]) any |= v == x;
        if (!any) return false;
    }
    if (s.contains("type")) {
        const auto& t = s["type"];
        bool ok = false;
        if (t.is_string()) ok = type_ok(v, t.get<std::string>());
        else
            for (const auto& x : t) ok |= type_ok(v, x.get<std::string>());
        if (!ok) return false;
    }
    if (v.is_string()) {
        const std::string str = v.get<std::string>();
        const size_t n = n_codepoints(str);
        if (s.contains("minLength") && n < s["minLength"].get<size_t>()) return false;
        if (s.contains("maxLength") && n > s["maxLength"].get<size_t>()) return false;
        if (s.contains("pattern") && !std::regex_search(str, std::regex(s["pattern"].get<std::string>()))) return false;
        if (s.contains("format")) {
            auto it = format_res().find(s["format"].get<std::string>());
            if (it != format_res().end() && !std::regex_search(str, std::regex(it->second))) return false;
        }
    }
    if (v.is_number()) {
        const double x = v.get<double>();
        if (s.contains("minimum") && x < s["minimum"].get<double>()) return false;
        if (s.contains("maximum") && x > s["maximum"].get<double>()) return false;
        if (s.contains("exclusiveMinimum") && x <= s["exclusiveMinimum"].get<double>()) return false;
        if (s.contains("exclusiveMaximum") && x >= s["exclusiveMaximum"].get<double>()) return false;
    }
    if (v.is_object()) {
        if (s.contains("required"))
            for (const auto& r : s["required"])
                if (!v.contains(r.get<std::string>())) return false;
        for (auto it = v.begin(); it != v.end(); ++it) {
            if (s.contains("properties") && s["properties"].contains(it.key())) {
                if (!validate(it.value(), s["properties"][it.key()], root)) return false;
            } else if (s.contains("additionalProperties")) {
                if (!validate(it.value(), s["additionalProperties"], root)) return false;
            }
        }
    }
    if (v.is_array()) {
        if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return false;
        if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return false;
        size_t k = 0;
        if (s.contains("prefixItems")) {
            k = s["prefixItems"].size();
            for (size_t i = 0; i < k && i < v.size(); ++i)
                if (!validate(v[i], s["prefixItems"][i], root)) return false;
        }
        if (s.contains("items"))
            for (size_t i = k; i < v.size(); ++i)
                if (!validate(v[i], s["items"], root)) return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// A generator of valid documents (with the whitespace and property order the grammar allows).

struct Gen {
    std::mt19937 rng;
    const ojson& root;
    explicit Gen(uint32_t seed, const ojson& r) : rng(seed), root(r) {}

    int uni(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
    bool coin(double p = 0.5) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }

    std::string ws() {
        const int k = uni(0, 5);
        if (k <= 2) return "";
        if (k == 3) return " ";
        std::string s = "\n";
        const int n = uni(0, 20);
        for (int i = 0; i < n; ++i) s += coin(0.9) ? ' ' : '\t';
        return s;
    }

    std::string str_char() {
        static const char* pool[] = {"a", "b", "z", "Q", " ", "0", "7", "-", "_", ".", ",", ":", "{", "}", "[", "]",
                                     "\\\"", "\\\\", "\\n", "\\t", "\\/", "\\u00e9", "\\u4E2D", "é", "中", "😀", "'", "#"};
        return pool[uni(0, int(std::size(pool)) - 1)];
    }

    std::string plain_string(int mn, int mx) {
        std::string s = "\"";
        const int n = uni(mn, mx);
        for (int i = 0; i < n; ++i) s += str_char();
        return s + "\"";
    }

    std::string digits(int n, bool lead_nonzero) {
        std::string s;
        for (int i = 0; i < n; ++i) s += char('0' + (i == 0 && lead_nonzero ? uni(1, 9) : uni(0, 9)));
        return s;
    }

    std::string pattern_sample(const std::string& p) {
        if (p == "^[a-z]+(-[a-z]+)*$") {
            std::string s;
            const int parts = uni(1, 3);
            for (int i = 0; i < parts; ++i) {
                if (i) s += "-";
                const int n = uni(1, 5);
                for (int k = 0; k < n; ++k) s += char('a' + uni(0, 25));
            }
            return s;
        }
        if (p == "^\\+?[0-9]{3}-[0-9]{4}$") return (coin() ? "+" : "") + digits(3, false) + "-" + digits(4, false);
        if (p == "ab") return coin() ? "ab" : "xxabyy";
        ADD_FAILURE() << "no generator for pattern " << p;
        return "";
    }

    std::string format_sample(const std::string& f) {
        char buf[64];
        if (f == "date") {
            snprintf(buf, sizeof buf, "%04d-%02d-%02d", uni(1900, 2100), uni(1, 12), uni(1, 28));
            return buf;
        }
        if (f == "date-time") {
            snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d%s", uni(1900, 2100), uni(1, 12), uni(1, 28), uni(0, 23),
                     uni(0, 59), uni(0, 59), coin() ? "Z" : "+05:30");
            return buf;
        }
        if (f == "uuid") {
            static const char* hx = "0123456789abcdefABCDEF";
            std::string s;
            for (int n : {8, 4, 4, 4, 12}) {
                if (!s.empty()) s += "-";
                for (int i = 0; i < n; ++i) s += hx[uni(0, 21)];
            }
            return s;
        }
        if (f == "email") return "user" + digits(2, false) + "@example.com";
        ADD_FAILURE() << "no generator for format " << f;
        return "";
    }

    std::string any_value(int depth) {
        const int k = uni(0, depth > 1 ? 4 : 6);
        switch (k) {
            case 0: return "null";
            case 1: return coin() ? "true" : "false";
            case 2: return std::to_string(uni(-1000, 1000));
            case 3: return plain_string(0, 6);
            case 4: return "1.5e3";
            case 5: {
                std::string s = "[" + ws();
                const int n = uni(0, 3);
                for (int i = 0; i < n; ++i) s += (i ? "," + ws() : "") + any_value(depth + 1) + ws();
                return s + "]";
            }
            default: {
                std::string s = "{" + ws();
                const int n = uni(0, 3);
                for (int i = 0; i < n; ++i)
                    s += (i ? "," + ws() : "") + "\"k" + std::to_string(i) + "\"" + ws() + ":" + ws() + any_value(depth + 1) + ws();
                return s + "}";
            }
        }
    }

    std::string value(const ojson& s, int depth = 0) {
        if (s.is_boolean()) return any_value(depth);
        if (s.contains("$ref")) return value(root.at(ojson::json_pointer(s["$ref"].get<std::string>().substr(1))), depth + 1);
        if (s.value("nullable", false) && coin(0.2)) return "null";
        if (s.contains("anyOf")) return value(s["anyOf"][size_t(uni(0, int(s["anyOf"].size()) - 1))], depth);
        if (s.contains("oneOf")) return value(s["oneOf"][size_t(uni(0, int(s["oneOf"].size()) - 1))], depth);
        if (s.contains("allOf")) return value(s["allOf"][0], depth);
        if (s.contains("const")) return s["const"].dump();
        if (s.contains("enum")) return s["enum"][size_t(uni(0, int(s["enum"].size()) - 1))].dump();
        std::string t;
        if (s.contains("type")) {
            t = s["type"].is_string() ? s["type"].get<std::string>() : s["type"][size_t(uni(0, int(s["type"].size()) - 1))].get<std::string>();
        } else if (s.contains("properties") || s.contains("additionalProperties")) {
            t = "object";
        } else if (s.contains("items")) {
            t = "array";
        } else {
            return any_value(depth);
        }
        if (t == "null") return "null";
        if (t == "boolean") return coin() ? "true" : "false";
        if (t == "integer") {
            long lo = s.contains("minimum") ? long(std::ceil(s["minimum"].get<double>())) : -100000;
            long hi = s.contains("maximum") ? long(std::floor(s["maximum"].get<double>())) : 100000;
            if (s.contains("exclusiveMinimum")) lo = long(std::floor(s["exclusiveMinimum"].get<double>())) + 1;
            if (s.contains("exclusiveMaximum")) hi = long(std::ceil(s["exclusiveMaximum"].get<double>())) - 1;
            if (coin(0.3)) {  // near the bounds
                const long x = coin() ? lo + uni(0, 3) : hi - uni(0, 3);
                if (x >= lo && x <= hi) return std::to_string(x);
            }
            return std::to_string(std::uniform_int_distribution<long>(lo, hi)(rng));
        }
        if (t == "number") {
            const bool nonneg = s.contains("minimum") || s.contains("exclusiveMinimum");
            const bool pos = s.contains("exclusiveMinimum");
            std::string x = digits(uni(1, 4), true);
            if (coin()) x += "." + digits(uni(1, 5), false);
            if (coin(0.2) && !pos) x = "0";
            if (!nonneg && !pos && coin(0.3)) x += (coin() ? "e" : "E") + std::string(coin() ? "-" : "") + digits(uni(1, 2), false);
            if (!nonneg && coin()) x = "-" + x;
            return x;
        }
        if (t == "string") {
            if (s.contains("pattern")) return "\"" + pattern_sample(s["pattern"]) + "\"";
            if (s.contains("format")) return "\"" + format_sample(s["format"]) + "\"";
            const int mn = s.value("minLength", 0), mx = s.value("maxLength", mn + 8);
            return plain_string(mn, mx);
        }
        if (t == "array") {
            const int mn = s.value("minItems", 0);
            int mx = s.value("maxItems", mn + 3);
            if (s.contains("items") && s["items"] == false) mx = std::min(mx, int(s["prefixItems"].size()));
            const int n = uni(mn, std::min(mx, mn + 3));
            std::string r = "[" + ws();
            for (int i = 0; i < n; ++i) {
                const ojson* item = nullptr;
                if (s.contains("prefixItems") && size_t(i) < s["prefixItems"].size()) item = &s["prefixItems"][size_t(i)];
                else if (s.contains("items")) item = &s["items"];
                r += (i ? "," + ws() : "") + (item ? value(*item, depth + 1) : any_value(depth + 1)) + ws();
            }
            return r + "]";
        }
        // object
        std::string r = "{" + ws();
        bool first = true;
        auto put = [&](const std::string& key, const std::string& val) {
            r += (first ? "" : "," + ws()) + ojson(key).dump() + ws() + ":" + ws() + val + ws();
            first = false;
        };
        std::set<std::string> req;
        if (s.contains("required"))
            for (const auto& x : s["required"]) req.insert(x.get<std::string>());
        if (s.contains("properties"))
            for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it)
                if (req.count(it.key()) || coin(0.6)) put(it.key(), value(it.value(), depth + 1));
        if (s.contains("additionalProperties") && !(s["additionalProperties"].is_boolean() && !s["additionalProperties"].get<bool>())) {
            const int n = uni(0, 2);
            for (int i = 0; i < n; ++i) {
                std::string k = "x" + std::to_string(i);
                if (s.contains("properties") && s["properties"].contains(k)) continue;
                put(k, s["additionalProperties"].is_boolean() ? any_value(depth + 1) : value(s["additionalProperties"], depth + 1));
            }
        }
        return r + "}";
    }
};

// A representative schema: nested objects, arrays with bounds, enums, $ref recursion, formats.
const char* kRepresentative = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 40},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "email": {"type": "string", "format": "email"},
    "role": {"enum": ["admin", "editor", "viewer"]},
    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5},
    "address": {
      "type": "object",
      "properties": {
        "street": {"type": "string"},
        "city": {"type": "string"},
        "zip": {"type": "string", "pattern": "^\\+?[0-9]{3}-[0-9]{4}$"}
      },
      "required": ["street", "city"]
    },
    "scores": {"type": "array", "items": {"type": "number"}, "maxItems": 4},
    "active": {"type": "boolean"},
    "manager": {"anyOf": [{"$ref": "#/$defs/person"}, {"type": "null"}]}
  },
  "required": ["name", "age", "role", "tags", "active"],
  "additionalProperties": false,
  "$defs": {
    "person": {
      "type": "object",
      "properties": {
        "name": {"type": "string"},
        "reports": {"type": "array", "items": {"$ref": "#/$defs/person"}, "maxItems": 2}
      },
      "required": ["name"]
    }
  }
})";

std::vector<std::string> random_schemas() {
    return {
        kRepresentative,
        R"({"type": "array", "items": {"type": "integer", "minimum": -37, "maximum": 1234}, "minItems": 2, "maxItems": 6})",
        R"({"type": "object", "properties": {"a": {"type": "integer", "exclusiveMinimum": 0}, "b": {"type": ["string", "null"]},
            "c": {"type": "number", "minimum": 0}, "d": {"const": {"x": [1, 2]}}}, "additionalProperties": {"type": "integer"}})",
        R"({"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}, "day": {"type": "string", "format": "date"},
            "id": {"type": "string", "format": "uuid"}, "slug": {"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$"},
            "has": {"type": "string", "pattern": "ab"}}, "required": ["when", "id"]})",
        R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}, {"type": "null"}], "items": false, "minItems": 1})",
        R"({"oneOf": [{"type": "integer", "maximum": -1}, {"type": "string", "minLength": 2, "maxLength": 4}], "nullable": true})",
        R"({"$ref": "#/definitions/node", "definitions": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
            "kids": {"type": "array", "items": {"$ref": "#/definitions/node"}, "maxItems": 2}}, "required": ["v"], "additionalProperties": false}}})",
        R"({"type": "object", "additionalProperties": true, "properties": {"k": {"type": "boolean"}}, "required": ["k"]})",
        R"({})",
        R"({"type": "object"})",
    };
}

std::string mutate(std::mt19937& rng, std::string s) {
    static const std::string pool = "{}[]\",:0123456789-+.eE aftnulr\\x\n";
    auto uni = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
    const size_t k = uni(5);
    if (s.empty()) return "x";
    const size_t i = uni(s.size());
    switch (k) {
        case 0: s.erase(i, 1); break;
        case 1: s.insert(i, 1, pool[uni(pool.size())]); break;
        case 2: s[i] = pool[uni(pool.size())]; break;
        case 3: s.resize(i); break;
        default: {
            const size_t j = uni(s.size());
            std::swap(s[i], s[j]);
        }
    }
    return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The grammar engine

TEST(GrammarParse, Basics) {
    auto g = Grammar::parse(R"(
        root ::= greeting (" " name)? "!"{1,3}   # a comment
        greeting ::= "hi" | "hello"
        name ::= [A-Z] [a-z]*
    )");
    Matcher m(g, ascii_vocab());
    for (const char* ok : {"hi!", "hello!!!", "hi Bob!", "hello Z!!"}) EXPECT_TRUE(full_match_bytes(m, ok)) << ok;
    for (const char* bad : {"hi", "hi!!!!", "hey!", "hi bob!", "hi  Bob!", "hello Bob"}) EXPECT_FALSE(full_match(m, bad)) << bad;
    // a prefix is accepted but cannot end
    GrammarState s = m.initial();
    EXPECT_TRUE(m.advance(s, "hel"));
    EXPECT_FALSE(m.can_end(s));
    EXPECT_FALSE(m.advance(s, "x"));  // rejected, state unchanged
    EXPECT_TRUE(m.advance(s, "lo!"));
    EXPECT_TRUE(m.can_end(s));
}

TEST(GrammarParse, ClassesAndRepetition) {
    auto g = Grammar::parse(R"(root ::= [^a-c\n] [a-cx-z]{2} ("-" [0-9]){0,2} [\x41\u00e9-\u00ea] .)");
    Matcher m(g, ascii_vocab());
    EXPECT_TRUE(full_match_bytes(m, "dabA?"));
    EXPECT_TRUE(full_match_bytes(m, "Zzx-1-2é中"));
    EXPECT_TRUE(full_match_bytes(m, "😀ccê\n"));
    EXPECT_FALSE(full_match(m, "aabA?"));     // negated class
    EXPECT_FALSE(full_match(m, "\nabA?"));
    EXPECT_FALSE(full_match(m, "dawA?"));      // outside the ranges
    EXPECT_FALSE(full_match(m, "dab-1-2-3A?"));  // {0,2}
    EXPECT_FALSE(full_match(m, "dabë?"));      // U+00EB outside \u00e9-\u00ea
}

TEST(GrammarParse, Errors) {
    auto err = [](const char* text) {
        try {
            Grammar::parse(text);
        } catch (const GrammarError& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_NE(err("root ::= foo").find("undefined rule 'foo'"), std::string::npos);
    EXPECT_NE(err("root ::= root \"a\" | \"b\"").find("left recursion"), std::string::npos);
    EXPECT_NE(err("root ::= (\"a\"?)*").find("left recursion"), std::string::npos);
    EXPECT_NE(err("root ::= \"a").find("unterminated"), std::string::npos);
    EXPECT_NE(err("root ::= [a").find("unterminated"), std::string::npos);
    EXPECT_NE(err("root ::= \"a\"{3,1}").find("n < m"), std::string::npos);
    EXPECT_NE(err("x ::= \"a\"").find("no rule named 'root'"), std::string::npos);
    EXPECT_NE(err("root ::= \"a\"\nroot ::= \"b\"").find("defined twice"), std::string::npos);
    EXPECT_NE(err("root ::= (\"a\"").find("line 1"), std::string::npos);
}

TEST(GrammarUtf8, SplitCharacters) {
    auto g = Grammar::parse(R"(root ::= [é-ë]+ "中")");
    Matcher m(g, ascii_vocab());
    const std::string text = "éë中";
    // every split of the bytes
    for (size_t cut = 0; cut <= text.size(); ++cut) {
        GrammarState s = m.initial();
        ASSERT_TRUE(m.advance(s, text.substr(0, cut))) << cut;
        EXPECT_EQ(m.can_end(s), cut == text.size());
        ASSERT_TRUE(m.advance(s, text.substr(cut))) << cut;
        EXPECT_TRUE(m.can_end(s));
    }
    GrammarState s = m.initial();
    EXPECT_FALSE(m.accepts(s, "\xC3"
                              "\xA8"));  // è: U+00E8, outside
    EXPECT_TRUE(m.accepts(s, "\xC3"));   // could still be é..ë
    EXPECT_FALSE(m.accepts(s, "\xC4"));  // U+0100.. : no completion in the class
    EXPECT_FALSE(m.accepts(s, "\xFF"));  // never valid UTF-8
    EXPECT_FALSE(m.accepts(s, "\xC0\xA9"));  // overlong
    ASSERT_TRUE(m.advance(s, "é"));
    EXPECT_TRUE(m.accepts(s, "\xE4\xB8"));  // 中 is E4 B8 AD: a prefix that can still complete
    EXPECT_FALSE(m.accepts(s, "\xE4\xB9"));  // U+4E40.. : no completion is 中
    EXPECT_TRUE(m.accepts(s, "\xE4\xB8\xAD"));
    EXPECT_FALSE(m.accepts(s, "\xED\xA0\x80"));  // a surrogate
}

TEST(GrammarMask, TrieEqualsBruteForceSmallVocab) {
    std::vector<std::string> pieces = {"", "a", "ab", "abc", "b", "\xC3", "\xA9", "é", "éa", "\"", "a\"", "ab\"", " ", "  ", "x", "ab"};
    auto v = std::make_shared<TokenVocab>(pieces, std::vector<int32_t>{0});
    auto g = Grammar::parse(R"(root ::= "\"" ([a-b] | "é")* "\"" " "?)");
    Matcher m(g, v);
    GrammarState s = m.initial();
    for (const std::string step : {"\"", "a", "\xC3", "\xA9", "b", "\"", " "}) {
        TokenMask a, b, c;
        m.fill_mask(s, a);
        m.fill_mask_trie(s, b);
        m.fill_mask_bruteforce(s, c);
        EXPECT_TRUE(a == c) << step;
        EXPECT_TRUE(b == c) << step;
        ASSERT_TRUE(m.advance(s, step));
    }
    EXPECT_TRUE(m.can_end(s));
    TokenMask a;
    m.fill_mask(s, a);
    EXPECT_TRUE(a.test(0));  // EOG allowed
    EXPECT_EQ(a.count(), 1u);
}

// ---------------------------------------------------------------------------------------------
// JSON Schema

struct Case {
    const char* schema;
    std::vector<std::string> valid, invalid;
};

TEST(JsonSchema, HandWritten) {
    const std::vector<Case> cases = {
        {R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a"]})",
         {R"({"a":1})", R"({"a":-20,"b":"x"})", "{ \"a\" : 0 , \"b\" : \"\" }", "\n{\n  \"a\": 5\n}\n", R"({"a":1,"b":"\"\\\u00e9中"})"},
         {R"({})", R"({"b":"x"})", R"({"b":"x","a":1})", R"({"a":1,"c":2})", R"({"a":01})", R"({"a":1.5})", R"({"a":1,})",
          R"({"a":"1"})", "{\"a\":1}  ", "{\"a\":\n\n1}", "{\"a\":1,\"b\":\"\n\"}", R"({"a":1,"b":"\x"})"}},
        {R"({"type":"object","properties":{"a":{"type":"boolean"}},"additionalProperties":{"type":"number"}})",
         {R"({})", R"({"a":true,"z":1.5e3})", R"({"zz":-0.25,"y":3})", R"({"ab":1})", R"({"":1})"},
         {R"({"a":1})", R"({"z":"s"})", R"({"z":1,"a":true})"}},
        {R"({"type":"array","items":{"enum":["red","green",3,null]},"minItems":1,"maxItems":3})",
         {R"(["red"])", R"([3, null, "green"])", R"([ "red" ])"},
         {R"([])", R"(["blue"])", R"(["red","red","red","red"])", R"([4])"}},
        {R"({"type":"string","minLength":2,"maxLength":3})", {R"("ab")", R"("abc")", R"("\n\u0041")", R"("中文字")"}, {R"("a")", R"("abcd")"}},
        {R"({"type":"string","pattern":"^[A-Z]{2}[0-9]+$"})", {R"("AB1")", R"("ZZ0123")"}, {R"("A1")", R"("AB")", R"("ab1")", R"("AB1x")"}},
        {R"({"type":"string","pattern":"a(b|c)?d"})", {R"("ad")", R"("xxabd")", R"("acdyy")"}, {R"("abbd")", R"("a")"}},
        {R"({"type":"integer","minimum":-5,"maximum":120})",
         {"-5", "-1", "0", "9", "10", "99", "100", "120"},
         {"-6", "-10", "121", "200", "1000", "-0", "007", "1.0"}},
        {R"({"type":"integer","exclusiveMinimum":0})", {"1", "42", "9999999"}, {"0", "-1"}},
        {R"({"type":"number","minimum":0})", {"0", "0.5", "3.25", "10"}, {"-1", "-0.5"}},
        {R"({"type":"number","exclusiveMinimum":0})", {"0.001", "2"}, {"0", "0.000", "-3"}},
        {R"({"type":"string","format":"date"})", {R"("2024-02-29")"}, {R"("2024-13-01")", R"("24-01-01")"}},
        {R"({"type":"string","format":"date-time"})", {R"("2024-02-29T23:59:59Z")", R"("2024-02-29T01:02:03.5+01:00")"}, {R"("2024-02-29 23:59:59")"}},
        {R"({"type":"string","format":"time"})", {R"("12:00:00Z")"}, {R"("25:00:00Z")"}},
        {R"({"type":"string","format":"uuid"})", {R"("123e4567-e89b-12d3-a456-426614174000")"}, {R"("123e4567e89b12d3a456426614174000")"}},
        {R"({"type":"string","format":"email"})", {R"("a.b@example.org")"}, {R"("ab.example.org")", R"("a@b@c")"}},
        {R"({"anyOf":[{"type":"null"},{"type":"boolean"}]})", {"null", "true"}, {"1", "\"null\""}},
        {R"({"type":["integer","string"]})", {"1", "\"s\""}, {"true"}},
        {R"({"const":"fixed"})", {R"("fixed")"}, {R"("other")"}},
        {R"({"$defs":{"t":{"type":"object","properties":{"c":{"type":"array","items":{"$ref":"#/$defs/t"}}},"additionalProperties":false}},"$ref":"#/$defs/t"})",
         {R"({})", R"({"c":[]})", R"({"c":[{"c":[{}]},{}]})"}, {R"({"c":[1]})", R"({"d":1})"}},
        {R"({"type":"array","prefixItems":[{"type":"integer"},{"type":"string"}],"items":false})",
         {"[]", "[1]", R"([1,"a"])"}, {R"(["a"])", R"([1,"a",2])"}},
        {R"({"type":"object"})", {"{}", R"({"x":[1,{"y":null}]})"}, {"[]", "{"}},
        {R"(true)", {"1", "[]", R"({"a":"b"})", "null"}, {"nul", "{]"}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.schema);
        auto g = schema_grammar(c.schema);
        Matcher m(g, ascii_vocab());
        for (const auto& v : c.valid) EXPECT_TRUE(full_match_bytes(m, v)) << "should accept " << v;
        for (const auto& v : c.invalid) EXPECT_FALSE(full_match(m, v)) << "should reject " << v;
    }
}

TEST(JsonSchema, JsonObjectMode) {
    Matcher m(json_object_grammar(), ascii_vocab());
    EXPECT_TRUE(full_match(m, R"({"a": [1, 2.5e-3, "x", true, null, {"b": {}}]})"));
    EXPECT_TRUE(full_match(m, "{}"));
    EXPECT_FALSE(full_match(m, "[]"));
    EXPECT_FALSE(full_match(m, "\"s\""));
    EXPECT_FALSE(full_match(m, "{\"a\":1}x"));
}

TEST(JsonSchema, WhitespaceIsBounded) {
    Matcher m(schema_grammar(R"({"type":"array","items":{"type":"integer"}})"), ascii_vocab());
    EXPECT_TRUE(full_match(m, "[\n" + std::string(20, ' ') + "1]"));
    EXPECT_FALSE(full_match(m, "[\n" + std::string(21, ' ') + "1]"));
    EXPECT_FALSE(full_match(m, "[  1]"));
    EXPECT_FALSE(full_match(m, "[\n\n1]"));
    EXPECT_TRUE(full_match(m, " [1] "));
    EXPECT_FALSE(full_match(m, "[1" + std::string(30, '0') + "]"));  // bounded digits
}

TEST(JsonSchema, UnsupportedKeywordsAreNamed) {
    struct E {
        const char* schema;
        const char* keyword;
        const char* path;
    };
    const std::vector<E> cases = {
        {R"({"type":"object","properties":{"a":{"type":"array","uniqueItems":true}}})", "uniqueItems", "#/properties/a"},
        {R"({"not":{"type":"string"}})", "not", "#"},
        {R"({"type":"object","patternProperties":{"^x":{}}})", "patternProperties", "#"},
        {R"({"type":"number","multipleOf":3})", "multipleOf", "#"},
        {R"({"type":"number","minimum":2.5})", "minimum", "#"},
        {R"({"type":"string","format":"hostname"})", "format", "#"},
        {R"({"type":"string","pattern":"(?=a)b"})", "pattern", "#"},
        {R"({"type":"string","pattern":"\\bword"})", "pattern", "#"},
        {R"({"type":"array","items":{"if":{"type":"string"}}})", "if", "#/items"},
        {R"({"$ref":"http://example.com/s.json"})", "$ref", "#"},
        {R"({"$ref":"#/$defs/x","$defs":{"x":{"type":"object","minProperties":1}}})", "minProperties", "#/$defs/x"},
        {R"({"type":"object","properties":{"a/b":{"dependentRequired":{}}}})", "dependentRequired", "#/properties/a~1b"},
        {R"({"type":"string","pattern":"^a+$","maxLength":3})", "maxLength", "#"},
    };
    for (const auto& c : cases) {
        try {
            schema_grammar(c.schema);
            ADD_FAILURE() << "no error for " << c.schema;
        } catch (const SchemaError& e) {
            EXPECT_EQ(e.keyword(), c.keyword) << c.schema;
            EXPECT_EQ(e.path(), c.path) << c.schema;
            EXPECT_NE(std::string(e.what()).find(c.keyword), std::string::npos) << e.what();
        }
    }
    EXPECT_THROW(schema_grammar(R"({"type":"integer","minimum":5,"maximum":4})"), SchemaError);
    EXPECT_THROW(schema_grammar(R"(false)"), SchemaError);
    EXPECT_THROW(schema_grammar(R"({"$ref":"#/$defs/missing"})"), SchemaError);
}

TEST(JsonSchema, RandomValidAndMutated) {
    int accepted_mutants = 0, total_mutants = 0;
    for (const auto& text : random_schemas()) {
        SCOPED_TRACE(text);
        const ojson schema = ojson::parse(text);
        Matcher m(json_schema_grammar(schema), ascii_vocab());
        Gen gen(1234, schema);
        std::mt19937 rng(99);
        for (int i = 0; i < 40; ++i) {
            const std::string doc = gen.value(schema);
            ASSERT_TRUE(validate(ojson::parse(doc), schema, schema)) << "generator bug: " << doc;
            ASSERT_TRUE(full_match_bytes(m, doc)) << "valid document rejected: " << doc;
            for (int k = 0; k < 12; ++k) {
                const std::string bad = mutate(rng, doc);
                ++total_mutants;
                if (!full_match(m, bad)) continue;
                ++accepted_mutants;
                ojson v;
                try {
                    v = ojson::parse(bad);
                } catch (const std::exception& e) {
                    ADD_FAILURE() << "accepted text that is not JSON: " << bad;
                    continue;
                }
                EXPECT_TRUE(validate(v, schema, schema)) << "accepted an invalid document: " << bad;
            }
        }
    }
    // Most mutations must be rejected (and the accepted ones were valid).
    EXPECT_LT(accepted_mutants, total_mutants / 2);
}

// ---------------------------------------------------------------------------------------------
// Masks on real vocabularies

namespace {

struct LoadedTok {
    std::unique_ptr<gguf::File> f;
    std::unique_ptr<Tokenizer> tok;
    std::shared_ptr<const TokenVocab> vocab;
};

const LoadedTok* load_tok(const std::string& path) {
    static std::map<std::string, std::unique_ptr<LoadedTok>> cache;
    auto it = cache.find(path);
    if (it != cache.end()) return it->second.get();
    if (!std::ifstream(path).good()) return nullptr;
    auto l = std::make_unique<LoadedTok>();
    l->f = gguf::File::open(path);
    l->tok = Tokenizer::from_gguf(*l->f);
    l->vocab = TokenVocab::from_tokenizer(*l->tok);
    return (cache[path] = std::move(l)).get();
}

// Generates documents, tokenizes them and walks them token by token, comparing the masks.
void check_masks(const LoadedTok& t, const std::string& schema_text, int n_docs, int brute_every) {
    const ojson schema = ojson::parse(schema_text);
    auto g = json_schema_grammar(schema);
    auto cache = std::make_shared<MaskCache>(g, t.vocab);
    Gen gen(7, schema);
    int steps = 0;
    for (int d = 0; d < n_docs; ++d) {
        Matcher m(cache);
        const std::string doc = gen.value(schema);
        std::vector<int32_t> ids = t.tok->encode(doc, false, false);
        std::string joined;
        for (int32_t id : ids) joined += t.vocab->piece(id);
        GrammarState s = m.initial();
        GrammarState byte_state = m.initial();
        ASSERT_TRUE(m.advance(byte_state, joined)) << joined;
        for (size_t i = 0; i <= ids.size(); ++i, ++steps) {
            TokenMask fast;
            m.fill_mask(s, fast);
            if (steps % brute_every == 0 || i == ids.size()) {
                TokenMask trie, brute;
                m.fill_mask_trie(s, trie);
                m.fill_mask_bruteforce(s, brute);
                ASSERT_TRUE(fast == brute) << "step " << i << " of " << doc << ": cached " << fast.count() << " brute " << brute.count();
                ASSERT_TRUE(trie == brute) << "step " << i << " of " << doc;
            }
            if (i == ids.size()) {
                EXPECT_TRUE(m.can_end(s));
                for (int32_t e : t.vocab->eog()) EXPECT_TRUE(fast.test(e));
                break;
            }
            ASSERT_TRUE(fast.test(ids[i])) << "token " << ids[i] << " '" << t.vocab->piece(ids[i]) << "' masked at step " << i << " of " << doc;
            for (int32_t e : t.vocab->eog()) EXPECT_FALSE(fast.test(e) && !m.can_end(s));
            ASSERT_TRUE(m.advance_token(s, ids[i]));
        }
        EXPECT_TRUE(s == byte_state);  // token by token == byte by byte
    }
}

}  // namespace

TEST(GrammarMask, Stories260K) {
    const LoadedTok* t = load_tok(std::string(YITI_SHARED_DIR) + "/models/stories260K.gguf");
    if (!t) GTEST_SKIP() << "missing stories260K.gguf";
    for (const auto& s : random_schemas()) {
        SCOPED_TRACE(s);
        check_masks(*t, s, 3, 1);
    }
}

TEST(GrammarMask, SmolLM2) {
    const LoadedTok* t = load_tok(std::string(YITI_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if (!t) GTEST_SKIP() << "missing SmolLM2-135M-Instruct.Q4_1.gguf";
    check_masks(*t, kRepresentative, 2, 6);
    const auto schemas = random_schemas();
    for (size_t i = 1; i < schemas.size(); ++i) {
        SCOPED_TRACE(schemas[i]);
        check_masks(*t, schemas[i], 1, 16);
    }
    // json_object mode and a mid-character state (a token that ends inside a UTF-8 character)
    Matcher m(json_object_grammar(), t->vocab);
    GrammarState s = m.initial();
    ASSERT_TRUE(m.advance(s, "{\"k\": \"\xE4"));
    TokenMask a, b;
    m.fill_mask(s, a);
    m.fill_mask_bruteforce(s, b);
    EXPECT_TRUE(a == b);
    EXPECT_GT(a.count(), 0u);
}
