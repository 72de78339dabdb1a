// Jinja lexer: splits a template into data and tag tokens, applying the whitespace rules of Jinja2
// (trim_blocks, lstrip_blocks, `-`/`+` modifiers, comment and raw handling), and tokenizes the
// expressions inside {{ }} and {% %}.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "tokenizer/jinja_internal.h"

namespace yiti::jinja::detail {

void fail(int line, const std::string& msg) {
    if (line > 0) throw Error("jinja: line " + std::to_string(line) + ": " + msg);
    throw Error("jinja: " + msg);
}

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Byte length of the whitespace character (Python's str.isspace, as the regex \s matches) that
// starts at `pos`, or 0.
size_t ws_at(std::string_view s, size_t pos) {
    if (pos >= s.size()) return 0;
    unsigned char c = (unsigned char)s[pos];
    if (c < 0x80) return py_isspace(c) ? 1 : 0;
    if (c != 0xC2 && c != 0xE1 && c != 0xE2 && c != 0xE3) return 0;
    auto cps = utf8_decode(s.substr(pos, 3));
    if (cps.empty() || !py_isspace(cps[0])) return 0;
    return cps[0] < 0x800 ? 2 : 3;
}

// Byte length of the whitespace character that ends just before `end`, or 0.
size_t ws_before(std::string_view s, size_t end) {
    for (size_t len = 1; len <= 3 && len <= end; ++len)
        if (ws_at(s, end - len) == len) return len;
    return 0;
}

size_t skip_ws(std::string_view s, size_t pos) {
    while (size_t n = ws_at(s, pos)) pos += n;
    return pos;
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

std::string normalize_newlines(std::string_view src, bool keep_trailing_newline) {
    std::string s;
    s.reserve(src.size());
    for (size_t i = 0; i < src.size(); ++i) {
        char c = src[i];
        if (c == '\r') {
            if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
            s += '\n';
        } else {
            s += c;
        }
    }
    if (!keep_trailing_newline && !s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Decodes the body of a string literal with Python's escape rules.
std::string unescape(std::string_view body, int line) {
    std::string out;
    out.reserve(body.size());
    uint32_t pending_high = 0;  // a high surrogate waiting for its low half
    auto put = [&](uint32_t cp) {
        if (pending_high) {
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                utf8_append(out, 0x10000 + ((pending_high - 0xD800) << 10) + (cp - 0xDC00));
                pending_high = 0;
                return;
            }
            utf8_append(out, 0xFFFD);
            pending_high = 0;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            pending_high = cp;
            return;
        }
        if (cp >= 0xDC00 && cp <= 0xDFFF) cp = 0xFFFD;
        utf8_append(out, cp);
    };
    auto flush = [&]() {
        if (pending_high) utf8_append(out, 0xFFFD);
        pending_high = 0;
    };
    for (size_t i = 0; i < body.size(); ++i) {
        char c = body[i];
        if (c != '\\' || i + 1 >= body.size()) {
            flush();
            out += c;
            continue;
        }
        char e = body[++i];
        switch (e) {
            case '\n': break;  // line continuation
            case '\\': flush(); out += '\\'; break;
            case '\'': flush(); out += '\''; break;
            case '"': flush(); out += '"'; break;
            case 'a': flush(); out += '\a'; break;
            case 'b': flush(); out += '\b'; break;
            case 'f': flush(); out += '\f'; break;
            case 'n': flush(); out += '\n'; break;
            case 'r': flush(); out += '\r'; break;
            case 't': flush(); out += '\t'; break;
            case 'v': flush(); out += '\v'; break;
            case 'x':
            case 'u':
            case 'U': {
                size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                uint32_t cp = 0;
                for (size_t k = 1; k <= digits; ++k) {
                    int h = i + k < body.size() ? hex_value(body[i + k]) : -1;
                    if (h < 0) fail(line, std::string("truncated \\") + e + " escape in string literal");
                    cp = cp * 16 + (uint32_t)h;
                }
                if (cp > 0x10FFFF) fail(line, "illegal Unicode character in string literal");
                i += digits;
                put(cp);
                break;
            }
            case 'N': fail(line, "unsupported \\N{...} escape in string literal");
            default:
                if (e >= '0' && e <= '7') {
                    uint32_t cp = (uint32_t)(e - '0');
                    for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
                        cp = cp * 8 + (uint32_t)(body[++i] - '0');
                    put(cp);
                } else {
                    flush();
                    out += '\\';
                    out += e;
                }
        }
    }
    flush();
    return out;
}

class Lexer {
public:
    Lexer(std::string src, const Options& opt) : src_(std::move(src)), opt_(opt) {}

    std::vector<Token> run() {
        size_t n = src_.size();
        bool line_starting = true;
        while (pos_ < n) {
            size_t start = find_tag(pos_);
            if (start == std::string::npos) {
                emit_data(src_.substr(pos_), pos_);
                pos_ = n;
                break;
            }
            std::string text = src_.substr(pos_, start - pos_);
            size_t text_pos = pos_;
            char kind = src_[start + 1];
            size_t j = start + 2;
            char sign = (j < n && (src_[j] == '-' || src_[j] == '+')) ? src_[j] : 0;
            size_t raw_end = kind == '%' ? match_raw_begin(start) : 0;
            strip_before(text, sign, kind != '{', line_starting);
            emit_data(text, text_pos);
            int tag_line = line_of(start);
            if (sign) ++j;
            if (raw_end) {
                pos_ = raw_end;
                lex_raw(tag_line);
            } else if (kind == '#') {
                lex_comment(j, tag_line);
            } else {
                lex_tag(j, kind == '%', tag_line);
            }
            line_starting = pos_ > 0 && src_[pos_ - 1] == '\n';
        }
        toks_.push_back(Token{Token::T::Eof, line_of(n), {}});
        return std::move(toks_);
    }

private:
    int line_of(size_t pos) {
        // Positions only move forward, so count newlines incrementally.
        if (pos < line_pos_) {
            line_pos_ = 0;
            line_ = 1;
        }
        for (; line_pos_ < pos && line_pos_ < src_.size(); ++line_pos_)
            if (src_[line_pos_] == '\n') ++line_;
        return line_;
    }

    size_t find_tag(size_t from) const {
        for (size_t i = from; i + 1 < src_.size(); ++i) {
            if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
        }
        return std::string::npos;
    }

    void emit_data(const std::string& text, size_t at) {
        if (text.empty()) return;
        toks_.push_back(Token{Token::T::Data, line_of(at), text});
    }

    // Applies `-` (strip all whitespace) or lstrip_blocks to the text before a tag.
    void strip_before(std::string& text, char sign, bool is_block, bool line_starting) const {
        if (sign == '-') {
            size_t e = text.size();
            while (size_t n = ws_before(text, e)) e -= n;
            text.resize(e);
        } else if (sign != '+' && opt_.lstrip_blocks && is_block) {
            size_t nl = text.rfind('\n');
            size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
            if ((l_pos > 0 || line_starting) && l_pos < text.size()) {
                if (skip_ws(text, l_pos) == text.size()) text.resize(l_pos);
            }
        }
    }

    // Whitespace handling after a tag end at pos_ with end sign `sign`.
    void after_end(char sign, bool trim) {
        if (sign == '-') {
            pos_ = skip_ws(src_, pos_);
        } else if (sign != '+' && trim && pos_ < src_.size() && src_[pos_] == '\n') {
            ++pos_;
        }
    }

    // `{%[-+]? raw [-]?%}` at `start`: returns the position after it (0 if not a raw tag).
    size_t match_raw_begin(size_t start) {
        size_t k = start + 2;
        if (k < src_.size() && (src_[k] == '-' || src_[k] == '+')) ++k;
        while (k < src_.size() && is_ws(src_[k])) ++k;
        if (src_.compare(k, 3, "raw") != 0) return 0;
        k += 3;
        if (k < src_.size() && is_name_char(src_[k])) return 0;
        while (k < src_.size() && is_ws(src_[k])) ++k;
        if (src_.compare(k, 3, "-%}") == 0) {
            return skip_ws(src_, k + 3);
        }
        if (src_.compare(k, 2, "%}") == 0) return k + 2;
        return 0;
    }

    void lex_raw(int line) {
        // Find `{%[-+]? endraw [-+]?%}`.
        size_t k = pos_;
        for (;;) {
            k = src_.find("{%", k);
            if (k == std::string::npos) fail(line, "unterminated 'raw' block (missing 'endraw')");
            size_t m = k + 2;
            char sign = 0;
            if (m < src_.size() && (src_[m] == '-' || src_[m] == '+')) sign = src_[m++];
            while (m < src_.size() && is_ws(src_[m])) ++m;
            if (src_.compare(m, 6, "endraw") == 0 && !(m + 6 < src_.size() && is_name_char(src_[m + 6]))) {
                m += 6;
                while (m < src_.size() && is_ws(src_[m])) ++m;
                char end_sign = 0;
                if (m < src_.size() && (src_[m] == '-' || src_[m] == '+')) end_sign = src_[m++];
                if (src_.compare(m, 2, "%}") == 0) {
                    std::string text = src_.substr(pos_, k - pos_);
                    bool line_starting = pos_ > 0 && src_[pos_ - 1] == '\n';
                    strip_before(text, sign, true, line_starting);
                    emit_data(text, pos_);
                    pos_ = m + 2;
                    after_end(end_sign, opt_.trim_blocks);
                    return;
                }
            }
            k += 2;
        }
    }

    void lex_comment(size_t j, int line) {
        size_t k = src_.find("#}", j);
        if (k == std::string::npos) fail(line, "unterminated comment (missing '#}')");
        char sign = (k > j && (src_[k - 1] == '-' || src_[k - 1] == '+')) ? src_[k - 1] : 0;
        pos_ = k + 2;
        after_end(sign, opt_.trim_blocks);
    }

    void push(Token::T t, int line, std::string s = {}) { toks_.push_back(Token{t, line, std::move(s)}); }

    void lex_tag(size_t j, bool block, int tag_line) {
        push(block ? Token::T::BlockBegin : Token::T::VarBegin, tag_line);
        std::vector<char> stack;
        size_t n = src_.size();
        pos_ = j;
        for (;;) {
            pos_ = skip_ws(src_, pos_);
            if (pos_ >= n)
                fail(tag_line, std::string("unexpected end of template, unterminated '") + (block ? "{%" : "{{") + "'");
            int line = line_of(pos_);
            if (stack.empty()) {
                const char* end = block ? "%}" : "}}";
                char sign = 0;
                size_t len = 0;
                if (src_[pos_] == '-' && src_.compare(pos_ + 1, 2, end) == 0) {
                    sign = '-';
                    len = 3;
                } else if (block && src_[pos_] == '+' && src_.compare(pos_ + 1, 2, end) == 0) {
                    sign = '+';
                    len = 3;
                } else if (src_.compare(pos_, 2, end) == 0) {
                    len = 2;
                }
                if (len) {
                    push(block ? Token::T::BlockEnd : Token::T::VarEnd, line);
                    pos_ += len;
                    after_end(sign, block && opt_.trim_blocks);
                    return;
                }
            }
            char c = src_[pos_];
            if (is_digit(c)) {
                lex_number(line);
            } else if (is_name_start(c)) {
                size_t k = pos_;
                while (k < n && is_name_char(src_[k])) ++k;
                push(Token::T::Name, line, src_.substr(pos_, k - pos_));
                pos_ = k;
            } else if (c == '\'' || c == '"') {
                size_t k = pos_ + 1;
                while (k < n && src_[k] != c) {
                    if (src_[k] == '\\') ++k;
                    ++k;
                }
                if (k >= n) fail(line, "unterminated string literal");
                push(Token::T::String, line, unescape(std::string_view(src_).substr(pos_ + 1, k - pos_ - 1), line));
                pos_ = k + 1;
            } else {
                static const char* const ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~",
                                                  "<",  ">",  "=",  ".",  ",",  ":",  "|", "(", ")", "[", "]",
                                                  "{",  "}",  ";"};
                const char* found = nullptr;
                for (const char* op : ops) {
                    if (src_.compare(pos_, strlen(op), op) == 0) {
                        found = op;
                        break;
                    }
                }
                if (!found) {
                    std::string shown(1, c);
                    if ((unsigned char)c >= 0x80) {  // show the whole UTF-8 character, or the byte
                        auto cps = utf8_decode(std::string_view(src_).substr(pos_, 4));
                        shown.clear();
                        if (!cps.empty() && (cps[0] < 0xDC80 || cps[0] > 0xDCFF)) utf8_append(shown, cps[0]);
                        else {
                            char b[8];
                            snprintf(b, sizeof b, "\\x%02x", (unsigned char)c);
                            shown = b;
                        }
                    }
                    fail(line, "unexpected character '" + shown + "' in tag");
                }
                std::string op = found;
                if (op == "(" || op == "[" || op == "{") {
                    stack.push_back(op[0]);
                } else if (op == ")" || op == "]" || op == "}") {
                    char want = op == ")" ? '(' : op == "]" ? '[' : '{';
                    if (stack.empty() || stack.back() != want) fail(line, "unexpected '" + op + "'");
                    stack.pop_back();
                }
                push(Token::T::Op, line, op);
                pos_ += op.size();
            }
        }
    }

    void lex_number(int line) {
        size_t n = src_.size();
        size_t k = pos_;
        bool after_dot = !toks_.empty() && toks_.back().t == Token::T::Op && toks_.back().s == ".";
        auto digits = [&](size_t at, auto pred) {
            // (\d+_)*\d+ style runs; returns the end (== at when no digit).
            size_t e = at;
            while (e < n && pred(src_[e])) {
                ++e;
                if (e + 1 < n && src_[e] == '_' && pred(src_[e + 1])) ++e;
            }
            return e;
        };
        auto dec = [](char c) { return c >= '0' && c <= '9'; };
        if (src_[k] == '0' && k + 1 < n && src_[k + 1] != 0 && strchr("xXoObB", src_[k + 1])) {
            char p = (char)(src_[k + 1] | 0x20);
            int base = p == 'x' ? 16 : p == 'o' ? 8 : 2;
            auto pred = [base](char c) {
                int h = hex_value(c);
                return h >= 0 && h < base;
            };
            size_t s = k + 2;
            if (s < n && src_[s] == '_') ++s;
            size_t e = digits(s, pred);
            if (e > s) {
                uint64_t v = 0;
                for (size_t q = s; q < e; ++q) {
                    if (src_[q] == '_') continue;
                    uint64_t nv = v * (uint64_t)base + (uint64_t)hex_value(src_[q]);
                    if (nv / (uint64_t)base != v || nv > (uint64_t)INT64_MAX) fail(line, "integer literal too large");
                    v = nv;
                }
                Token t{Token::T::Int, line, {}};
                t.i = (int64_t)v;
                toks_.push_back(t);
                pos_ = e;
                return;
            }
        }
        size_t e = digits(k, dec);
        bool is_float = false;
        if (!after_dot) {
            size_t f = e;
            if (f + 1 < n && src_[f] == '.' && dec(src_[f + 1])) {
                f = digits(f + 1, dec);
                is_float = true;
            }
            if (f < n && (src_[f] == 'e' || src_[f] == 'E')) {
                size_t g = f + 1;
                if (g < n && (src_[g] == '+' || src_[g] == '-')) ++g;
                size_t h = digits(g, dec);
                if (h > g) {
                    f = h;
                    is_float = true;
                }
            }
            if (is_float) e = f;
        }
        std::string text;
        for (size_t q = k; q < e; ++q)
            if (src_[q] != '_') text += src_[q];
        Token t{is_float ? Token::T::Float : Token::T::Int, line, {}};
        if (is_float) {
            t.f = strtod(text.c_str(), nullptr);
        } else {
            errno = 0;
            char* endp = nullptr;
            long long v = strtoll(text.c_str(), &endp, 10);
            if (errno == ERANGE) fail(line, "integer literal too large");
            t.i = v;
        }
        toks_.push_back(t);
        pos_ = e;
    }

    std::string src_;
    const Options& opt_;
    size_t pos_ = 0;
    size_t line_pos_ = 0;
    int line_ = 1;
    std::vector<Token> toks_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const Options& opt) {
    Lexer lx(normalize_newlines(source, opt.keep_trailing_newline), opt);
    return lx.run();
}

}  // namespace yiti::jinja::detail
