// Python methods of str, list and dict values, str.format / %-formatting, slicing and `in`.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "tokenizer/jinja_internal.h"

namespace yiti::jinja::detail {

namespace {

bool is_ascii(std::string_view s) {
    for (char c : s)
        if ((unsigned char)c >= 0x80) return false;
    return true;
}

// Python slice index adjustment (PySlice_AdjustIndices) for a sequence of length n.
void adjust_slice(int64_t n, const Value& start, const Value& stop, const Value& step, int line, int64_t& b,
                  int64_t& e, int64_t& st) {
    auto get = [&](const Value& v, const char* what) -> std::pair<bool, int64_t> {
        if (v.is_none() || v.is_undefined()) return {false, 0};
        if (!v.is_int()) fail(line, std::string("slice ") + what + " must be an integer or None, not " + v.type_name());
        return {true, v.as_int()};
    };
    auto [has_step, step_v] = get(step, "step");
    st = has_step ? step_v : 1;
    if (st == 0) fail(line, "slice step cannot be zero");
    auto [has_b, bv] = get(start, "start");
    auto [has_e, ev] = get(stop, "stop");
    auto fix = [&](bool has, int64_t v, bool is_start) -> int64_t {
        if (!has) {
            if (st > 0) return is_start ? 0 : n;
            return is_start ? n - 1 : -1;
        }
        if (v < 0) {
            v += n;
            if (v < 0) v = st < 0 ? -1 : 0;
        } else if (v >= n) {
            v = st < 0 ? n - 1 : n;
        }
        return v;
    };
    b = fix(has_b, bv, true);
    e = fix(has_e, ev, false);
}

// Code point index <-> byte offset in a UTF-8 string.
size_t cp_to_byte(std::string_view s, int64_t cp) {
    size_t i = 0;
    for (int64_t k = 0; k < cp && i < s.size(); ++k) {
        ++i;
        while (i < s.size() && ((unsigned char)s[i] & 0xC0) == 0x80) ++i;
    }
    return i;
}
int64_t byte_to_cp(std::string_view s, size_t byte) {
    int64_t n = 0;
    for (size_t i = 0; i < byte && i < s.size(); ++i)
        if (((unsigned char)s[i] & 0xC0) != 0x80) ++n;
    return n;
}

std::string str_arg(const Value& v, const char* what, int line) {
    if (!v.is_string()) fail(line, std::string(what) + " must be str, not " + v.type_name());
    return v.s;
}

int64_t int_arg(const Value& v, int64_t def, const char* what, int line) {
    if (v.is_undefined() || v.is_none()) return def;
    if (!v.is_int()) fail(line, std::string(what) + ": an integer is required, not " + v.type_name());
    return v.as_int();
}

// The substring [start:end] (code points, Python slice rules) and its code point offset.
std::string_view sub_range(std::string_view s, const Value& start, const Value& end, int line, int64_t& offset) {
    int64_t n = (int64_t)utf8_length(s);
    int64_t b, e, st;
    adjust_slice(n, start, end, Value::none(), line, b, e, st);
    if (e < b) e = b;
    offset = b;
    size_t bb = cp_to_byte(s, b), eb = cp_to_byte(s, e);
    return s.substr(bb, eb - bb);
}

}  // namespace

std::string py_strip(std::string_view s, const Value& chars, bool left, bool right) {
    std::vector<uint32_t> cps = utf8_decode(s);
    bool ws = chars.is_none() || chars.is_undefined();
    std::vector<uint32_t> set = ws ? std::vector<uint32_t>{} : utf8_decode(chars.s);
    auto strip_it = [&](uint32_t c) {
        if (ws) return py_isspace(c);
        return std::find(set.begin(), set.end(), c) != set.end();
    };
    size_t b = 0, e = cps.size();
    if (left)
        while (b < e && strip_it(cps[b])) ++b;
    if (right)
        while (e > b && strip_it(cps[e - 1])) --e;
    if (b == 0 && e == cps.size()) return std::string(s);
    return utf8_encode(cps, b, e);
}

std::vector<std::string> py_split(std::string_view s, const Value& sep, int64_t maxsplit, bool from_right, int line) {
    std::vector<std::string> out;
    if (sep.is_none() || sep.is_undefined()) {
        std::vector<uint32_t> cps = utf8_decode(s);
        int64_t n = (int64_t)cps.size();
        if (!from_right) {
            int64_t i = 0;
            while (true) {
                while (i < n && py_isspace(cps[(size_t)i])) ++i;
                if (i >= n) break;
                if (maxsplit >= 0 && (int64_t)out.size() == maxsplit) {
                    out.push_back(utf8_encode(cps, (size_t)i, (size_t)n));
                    break;
                }
                int64_t j = i;
                while (j < n && !py_isspace(cps[(size_t)j])) ++j;
                out.push_back(utf8_encode(cps, (size_t)i, (size_t)j));
                i = j;
            }
        } else {
            int64_t i = n;
            while (true) {
                while (i > 0 && py_isspace(cps[(size_t)i - 1])) --i;
                if (i <= 0) break;
                if (maxsplit >= 0 && (int64_t)out.size() == maxsplit) {
                    out.push_back(utf8_encode(cps, 0, (size_t)i));
                    break;
                }
                int64_t j = i;
                while (j > 0 && !py_isspace(cps[(size_t)j - 1])) --j;
                out.push_back(utf8_encode(cps, (size_t)j, (size_t)i));
                i = j;
            }
            std::reverse(out.begin(), out.end());
        }
        return out;
    }
    std::string d = str_arg(sep, "separator", line);
    if (d.empty()) fail(line, "empty separator");
    if (!from_right) {
        size_t pos = 0;
        while (true) {
            size_t k = (maxsplit >= 0 && (int64_t)out.size() >= maxsplit) ? std::string_view::npos : s.find(d, pos);
            if (k == std::string_view::npos) {
                out.emplace_back(s.substr(pos));
                break;
            }
            out.emplace_back(s.substr(pos, k - pos));
            pos = k + d.size();
        }
    } else {
        size_t end = s.size();
        while (true) {
            size_t k = std::string_view::npos;
            if (!(maxsplit >= 0 && (int64_t)out.size() >= maxsplit) && end >= d.size())
                k = s.substr(0, end).rfind(d);
            if (k == std::string_view::npos) {
                out.emplace_back(s.substr(0, end));
                break;
            }
            out.emplace_back(s.substr(k + d.size(), end - k - d.size()));
            end = k;
        }
        std::reverse(out.begin(), out.end());
    }
    return out;
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
    std::vector<uint32_t> cps = utf8_decode(s);
    std::vector<std::string> out;
    size_t i = 0, start = 0, n = cps.size();
    while (i < n) {
        uint32_t c = cps[i];
        bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                   c == 0x85 || c == 0x2028 || c == 0x2029;
        if (!brk) {
            ++i;
            continue;
        }
        size_t eol = i + 1;
        if (c == '\r' && eol < n && cps[eol] == '\n') ++eol;
        out.push_back(utf8_encode(cps, start, keepends ? eol : i));
        start = i = eol;
    }
    if (start < n) out.push_back(utf8_encode(cps, start, n));
    return out;
}

std::string py_replace(std::string_view s, std::string_view old, std::string_view neu, int64_t count) {
    std::string out;
    if (old.empty()) {
        std::vector<uint32_t> cps = utf8_decode(s);
        int64_t done = 0;
        for (size_t k = 0; k <= cps.size(); ++k) {
            if (count < 0 || done < count) {
                out += neu;
                ++done;
            }
            if (k < cps.size()) utf8_append(out, cps[k]);
        }
        return out;
    }
    size_t pos = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
        size_t k = s.find(old, pos);
        if (k == std::string_view::npos) break;
        out.append(s.substr(pos, k - pos));
        out.append(neu);
        pos = k + old.size();
        ++done;
    }
    out.append(s.substr(pos));
    return out;
}

std::string py_case(std::string_view s, int mode) {
    std::string out;
    out.reserve(s.size());
    if (is_ascii(s) && mode <= 1) {
        for (char c : s) out += (char)(mode == 0 ? py_lower((unsigned char)c) : py_upper((unsigned char)c));
        return out;
    }
    std::vector<uint32_t> cps = utf8_decode(s);
    bool prev_cased = false;
    for (size_t k = 0; k < cps.size(); ++k) {
        uint32_t c = cps[k];
        switch (mode) {
            case 0: c = py_lower(c); break;
            case 1:
                if (c == 0xDF) {  // German sharp s upper-cases to "SS"
                    out += "SS";
                    continue;
                }
                c = py_upper(c);
                break;
            case 2: {
                bool cased = py_lower(c) != c || py_upper(c) != c;
                if (cased) c = prev_cased ? py_lower(c) : py_upper(c);
                prev_cased = cased;
                break;
            }
            default: c = k == 0 ? py_upper(c) : py_lower(c); break;
        }
        utf8_append(out, c);
    }
    return out;
}

std::string pad_center(const std::string& s, int64_t width, const std::string& fill) {
    int64_t len = (int64_t)utf8_length(s);
    if (width <= len) return s;
    int64_t marg = width - len;
    int64_t left = marg / 2 + (marg & width & 1);
    std::string out;
    for (int64_t k = 0; k < left; ++k) out += fill;
    out += s;
    for (int64_t k = 0; k < marg - left; ++k) out += fill;
    return out;
}

// ---------------------------------------------------------------------------------------------
// Formatting

std::string format_spec(Interp& in, const Value& v, const std::string& spec, int line) {
    if (spec.empty()) return v.str();
    // [[fill]align][sign][#][0][width][grouping][.precision][type]
    std::vector<uint32_t> sp = utf8_decode(spec);
    size_t i = 0;
    std::string fill = " ";
    char align = 0;
    auto is_align = [](uint32_t c) { return c == '<' || c == '>' || c == '^' || c == '='; };
    if (sp.size() >= 2 && is_align(sp[1])) {
        fill.clear();
        utf8_append(fill, sp[0]);
        align = (char)sp[1];
        i = 2;
    } else if (!sp.empty() && is_align(sp[0])) {
        align = (char)sp[0];
        i = 1;
    }
    char sign = '-';
    if (i < sp.size() && (sp[i] == '+' || sp[i] == '-' || sp[i] == ' ')) sign = (char)sp[i++];
    bool alt = false;
    if (i < sp.size() && sp[i] == '#') {
        alt = true;
        ++i;
    }
    if (i < sp.size() && sp[i] == '0') {
        if (!align) {
            fill = "0";
            align = '=';
        }
        ++i;
    }
    int64_t width = 0;
    while (i < sp.size() && sp[i] >= '0' && sp[i] <= '9') width = width * 10 + (sp[i++] - '0');
    char group = 0;
    if (i < sp.size() && (sp[i] == ',' || sp[i] == '_')) group = (char)sp[i++];
    int precision = -1;
    if (i < sp.size() && sp[i] == '.') {
        ++i;
        precision = 0;
        while (i < sp.size() && sp[i] >= '0' && sp[i] <= '9') precision = precision * 10 + (int)(sp[i++] - '0');
    }
    char type = 0;
    if (i < sp.size()) type = (char)sp[i++];
    if (i != sp.size()) fail(line, "invalid format specifier '" + spec + "'");
    if (width > 100000 || precision > 1000) fail(line, "format width or precision too large");

    std::string body, prefix;
    bool numeric = v.is_number() && type != 's';
    if (!numeric) {
        if (type && type != 's') fail(line, std::string("unknown format code '") + type + "' for " + v.type_name());
        body = v.str();
        if (precision >= 0) {
            auto cps = utf8_decode(body);
            if ((size_t)precision < cps.size()) body = utf8_encode(cps, 0, (size_t)precision);
        }
        if (!align) align = '<';
    } else {
        if (!align) align = '>';
        bool neg = false;
        char buf[512];
        if (type == 0 && v.t == Value::T::Float && precision < 0) {
            body = format_float(v.f);
        } else if ((type == 0 || type == 'd' || type == 'n') && v.t != Value::T::Float) {
            int64_t x = v.as_int();
            neg = x < 0;
            body = std::to_string(neg ? -(uint64_t)x : (uint64_t)x);
        } else if (type == 'x' || type == 'X' || type == 'o' || type == 'b') {
            if (v.t == Value::T::Float) fail(line, std::string("unknown format code '") + type + "' for float");
            int64_t x = v.as_int();
            neg = x < 0;
            uint64_t u = neg ? -(uint64_t)x : (uint64_t)x;
            if (type == 'b') {
                do {
                    body.insert(body.begin(), (char)('0' + (u & 1)));
                    u >>= 1;
                } while (u);
            } else {
                snprintf(buf, sizeof buf, type == 'x' ? "%llx" : type == 'X' ? "%llX" : "%llo", (unsigned long long)u);
                body = buf;
            }
            if (alt) prefix = type == 'x' ? "0x" : type == 'X' ? "0X" : type == 'o' ? "0o" : "0b";
        } else if (type == 'c') {
            utf8_append(body, (uint32_t)v.as_int());
        } else {
            double x = v.as_float();
            neg = std::signbit(x) && !std::isnan(x);
            x = std::fabs(x);
            char t = type ? type : 'g';
            int prec = precision < 0 ? 6 : precision;
            if (t == '%') {
                snprintf(buf, sizeof buf, "%.*f%%", prec, x * 100);
            } else if (t == 'd') {
                fail(line, "unknown format code 'd' for float");
            } else {
                char f[16];
                snprintf(f, sizeof f, "%%%s.*%c", alt ? "#" : "", t == 'n' ? 'g' : t);
                snprintf(buf, sizeof buf, f, prec, x);
            }
            body = buf;
            if (type == 0 && body.find_first_of(".eEn") == std::string::npos && std::isfinite(x)) body += ".0";
        }
        if (group) {
            size_t dot = body.find_first_of(".eE%");
            std::string intpart = body.substr(0, dot == std::string::npos ? body.size() : dot);
            std::string rest = dot == std::string::npos ? "" : body.substr(dot);
            bool digits = !intpart.empty() && std::all_of(intpart.begin(), intpart.end(), [](char c) { return c >= '0' && c <= '9'; });
            if (digits) {
                std::string g;
                int cnt = 0;
                for (size_t k = intpart.size(); k-- > 0;) {
                    g.insert(g.begin(), intpart[k]);
                    if (++cnt % 3 == 0 && k > 0) g.insert(g.begin(), group);
                }
                body = g + rest;
            }
        }
        std::string s = neg ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
        prefix = s + prefix;
    }
    int64_t len = (int64_t)utf8_length(prefix) + (int64_t)utf8_length(body);
    if (len >= width) return prefix + body;
    int64_t pad = width - len;
    auto rep = [&](int64_t n) {
        std::string r;
        for (int64_t k = 0; k < n; ++k) r += fill;
        return r;
    };
    (void)in;
    switch (align) {
        case '<': return prefix + body + rep(pad);
        case '^': return rep(pad / 2) + prefix + body + rep(pad - pad / 2);
        case '=': return prefix + rep(pad) + body;
        default: return rep(pad) + prefix + body;
    }
}

namespace {

// str.format(*args, **kwargs)
std::string str_format(Interp& in, const std::string& fmt, Args& args, int line) {
    std::string out;
    size_t auto_idx = 0;
    size_t i = 0, n = fmt.size();
    while (i < n) {
        char c = fmt[i];
        if (c == '}') {
            if (i + 1 < n && fmt[i + 1] == '}') {
                out += '}';
                i += 2;
                continue;
            }
            fail(line, "format: single '}' encountered in format string");
        }
        if (c != '{') {
            out += c;
            ++i;
            continue;
        }
        if (i + 1 < n && fmt[i + 1] == '{') {
            out += '{';
            i += 2;
            continue;
        }
        size_t close = fmt.find('}', i);
        if (close == std::string::npos) fail(line, "format: single '{' encountered in format string");
        std::string field = fmt.substr(i + 1, close - i - 1);
        if (field.find('{') != std::string::npos) fail(line, "format: nested replacement fields are not supported");
        i = close + 1;
        std::string spec, conv;
        size_t colon = field.find(':');
        if (colon != std::string::npos) {
            spec = field.substr(colon + 1);
            field.resize(colon);
        }
        size_t bang = field.find('!');
        if (bang != std::string::npos) {
            conv = field.substr(bang + 1);
            field.resize(bang);
        }
        size_t end = field.find_first_of(".[");
        std::string head = field.substr(0, end == std::string::npos ? field.size() : end);
        Value v;
        if (head.empty()) {
            if (auto_idx >= args.pos.size()) fail(line, "format: replacement index out of range");
            v = args.pos[auto_idx++];
        } else if (std::all_of(head.begin(), head.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
            size_t k = (size_t)std::stoul(head);
            if (k >= args.pos.size()) fail(line, "format: replacement index out of range");
            v = args.pos[k];
        } else {
            bool found = false;
            for (auto& kv : args.kw)
                if (kv.first == head) {
                    v = kv.second;
                    found = true;
                }
            if (!found) fail(line, "format: missing keyword argument '" + head + "'");
        }
        size_t p = end;
        while (p != std::string::npos && p < field.size()) {
            if (field[p] == '.') {
                size_t q = field.find_first_of(".[", p + 1);
                std::string name = field.substr(p + 1, q == std::string::npos ? std::string::npos : q - p - 1);
                v = in.getattr(v, name, line);
                p = q;
            } else {
                size_t q = field.find(']', p);
                if (q == std::string::npos) fail(line, "format: missing ']' in format string");
                std::string key = field.substr(p + 1, q - p - 1);
                bool digits = !key.empty() && std::all_of(key.begin(), key.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
                v = in.getitem(v, digits ? Value::integer(std::stoll(key)) : Value::string(key), line);
                p = q + 1;
            }
        }
        if (conv == "r" || conv == "a") v = Value::string(v.repr());
        else if (conv == "s") v = Value::string(v.str());
        else if (!conv.empty()) fail(line, "format: unknown conversion '!" + conv + "'");
        out += format_spec(in, v, spec, line);
        in.check_size(out.size(), line);
    }
    return out;
}

}  // namespace

std::string percent_format(Interp& in, const std::string& fmt, const Value& args, int line) {
    std::vector<Value> items;
    const Value* mapping = nullptr;
    if (args.is_list() && args.as_list().tuple) items = args.as_list().items;
    else {
        items.push_back(args);
        // Python treats any non-tuple object with __getitem__ (dict, list) as a mapping argument:
        // no "not all arguments converted" error for it.
        if (args.is_dict() || args.is_list()) mapping = &args;
    }
    size_t next = 0;
    bool used_mapping = false;
    auto take = [&]() -> Value {
        if (next >= items.size()) fail(line, "not enough arguments for format string");
        return items[next++];
    };
    std::string out;
    size_t i = 0, n = fmt.size();
    while (i < n) {
        char c = fmt[i++];
        if (c != '%') {
            out += c;
            continue;
        }
        if (i >= n) fail(line, "incomplete format");
        if (fmt[i] == '%') {
            out += '%';
            ++i;
            continue;
        }
        Value v;
        bool have = false;
        if (fmt[i] == '(') {
            size_t close = fmt.find(')', i);
            if (close == std::string::npos) fail(line, "incomplete format key");
            if (!mapping || !mapping->is_dict()) fail(line, "format requires a mapping");
            std::string key = fmt.substr(i + 1, close - i - 1);
            Value* p = mapping->as_dict().find(std::string_view(key));
            if (!p) fail(line, "format: key '" + key + "' not found");
            v = *p;
            have = true;
            used_mapping = true;
            i = close + 1;
        }
        std::string flags;
        while (i < n && strchr("-+ #0", fmt[i])) flags += fmt[i++];
        std::string width, prec;
        bool has_prec = false;
        if (i < n && fmt[i] == '*') {
            width = std::to_string(take().as_int());
            ++i;
        } else {
            while (i < n && fmt[i] >= '0' && fmt[i] <= '9') width += fmt[i++];
        }
        if (i < n && fmt[i] == '.') {
            has_prec = true;
            ++i;
            if (i < n && fmt[i] == '*') {
                prec = std::to_string(take().as_int());
                ++i;
            } else {
                while (i < n && fmt[i] >= '0' && fmt[i] <= '9') prec += fmt[i++];
            }
        }
        while (i < n && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
        if (i >= n) fail(line, "incomplete format");
        char t = fmt[i++];
        if (!have) v = take();
        if ((width.size() > 6) || (prec.size() > 4)) fail(line, "format width or precision too large");
        int w = width.empty() ? 0 : std::stoi(width);
        int p = prec.empty() ? 0 : std::stoi(prec);
        bool left = flags.find('-') != std::string::npos;
        std::string piece;
        char buf[1100];
        switch (t) {
            case 's':
            case 'r':
            case 'a': {
                piece = t == 's' ? v.str() : v.repr();
                if (has_prec) {
                    auto cps = utf8_decode(piece);
                    if ((size_t)p < cps.size()) piece = utf8_encode(cps, 0, (size_t)p);
                }
                int64_t len = (int64_t)utf8_length(piece);
                if (len < w) piece = left ? piece + std::string((size_t)(w - len), ' ') : std::string((size_t)(w - len), ' ') + piece;
                break;
            }
            case 'd':
            case 'i':
            case 'u':
            case 'x':
            case 'X':
            case 'o':
            case 'c': {
                if (!v.is_number()) fail(line, std::string("%") + t + " format: a real number is required, not " + v.type_name());
                if (t == 'c') {
                    utf8_append(piece, (uint32_t)v.as_int());
                    break;
                }
                double fv = v.as_float();
                if (v.t == Value::T::Float && !std::isfinite(fv)) fail(line, "cannot convert float infinity or NaN to integer");
                long long x = v.t == Value::T::Float ? (long long)std::trunc(fv) : (long long)v.as_int();
                std::string f = "%" + flags + width + (has_prec ? "." + prec : "") + "ll" + (t == 'i' || t == 'u' ? 'd' : t);
                snprintf(buf, sizeof buf, f.c_str(), x);
                piece = buf;
                break;
            }
            case 'f':
            case 'F':
            case 'e':
            case 'E':
            case 'g':
            case 'G': {
                if (!v.is_number()) fail(line, std::string("%") + t + " format: a real number is required, not " + v.type_name());
                std::string f = "%" + flags + width + (has_prec ? "." + prec : "") + t;
                snprintf(buf, sizeof buf, f.c_str(), v.as_float());
                piece = buf;
                break;
            }
            default: fail(line, std::string("unsupported format character '") + t + "'");
        }
        out += piece;
        in.check_size(out.size(), line);
    }
    if (!used_mapping && next < items.size() && !mapping)
        fail(line, "not all arguments converted during string formatting");
    return out;
}

// ---------------------------------------------------------------------------------------------
// Slicing and membership

Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step, int line) {
    if (obj.is_undefined()) fail(line, obj.s.empty() ? "undefined value" : obj.s);
    if (obj.is_string()) {
        std::vector<uint32_t> cps = utf8_decode(obj.s);
        int64_t b, e, st;
        adjust_slice((int64_t)cps.size(), start, stop, step, line, b, e, st);
        std::string out;
        if (st == 1) return Value::string(b < e ? utf8_encode(cps, (size_t)b, (size_t)e) : std::string());
        for (int64_t k = b; st > 0 ? k < e : k > e; k += st) utf8_append(out, cps[(size_t)k]);
        return Value::string(std::move(out));
    }
    if (obj.is_list() && !obj.as_list().lazy) {
        const auto& items = obj.as_list().items;
        int64_t b, e, st;
        adjust_slice((int64_t)items.size(), start, stop, step, line, b, e, st);
        std::vector<Value> out;
        for (int64_t k = b; st > 0 ? k < e : k > e; k += st) out.push_back(items[(size_t)k]);
        return Value::list(std::move(out), obj.as_list().tuple);
    }
    // Jinja2 compiles slices to a plain Python subscript, so these raise.
    if (obj.is_dict()) fail(line, "unhashable type: 'slice'");
    fail(line, "'" + obj.type_name() + "' object is not subscriptable");
}

bool contains(const Value& container, const Value& item, int line) {
    switch (container.t) {
        case Value::T::Undefined: return false;
        case Value::T::String:
            if (!item.is_string())
                fail(line, "'in <string>' requires string as left operand, not " + item.type_name());
            return container.s.find(item.s) != std::string::npos;
        case Value::T::List:
            for (const auto& v : container.as_list().items)
                if (values_equal(v, item)) return true;
            return false;
        case Value::T::Dict:
            if (container.as_dict().is_namespace) break;
            if ((item.is_list() && !item.as_list().tuple && !item.as_list().lazy) || item.is_dict())
                fail(line, "unhashable type: '" + item.type_name() + "'");
            return container.as_dict().find(item) != nullptr;
        default: break;
    }
    fail(line, "argument of type '" + container.type_name() + "' is not iterable");
}

// ---------------------------------------------------------------------------------------------
// Methods

namespace {

const std::unordered_set<std::string> kStrMethods = {
    "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "upper", "lower", "title", "capitalize",
    "swapcase", "casefold", "replace", "find", "rfind", "index", "rindex", "count", "startswith", "endswith",
    "join", "format", "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper", "isnumeric",
    "isdecimal", "istitle", "zfill", "center", "ljust", "rjust", "partition", "rpartition", "removeprefix",
    "removesuffix"};
const std::unordered_set<std::string> kListMethods = {"append", "extend", "insert", "pop", "remove", "clear",
                                                      "index", "count", "copy", "reverse"};
const std::unordered_set<std::string> kTupleMethods = {"index", "count"};
const std::unordered_set<std::string> kDictMethods = {"items", "keys", "values", "get", "copy", "pop",
                                                      "update", "setdefault", "clear"};

Value str_list(std::vector<std::string> parts) {
    std::vector<Value> items;
    items.reserve(parts.size());
    for (auto& p : parts) items.push_back(Value::string(std::move(p)));
    return Value::list(std::move(items));
}

Value string_method(Interp& in, const std::string& s, const std::string& name, Args& args, int line) {
    auto arg = [&](size_t k, const char* kwname = nullptr) -> Value {
        if (k < args.pos.size()) return args.pos[k];
        if (kwname)
            for (auto& kv : args.kw)
                if (kv.first == kwname) return kv.second;
        return Value::undefined();
    };
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
        Value chars = arg(0, "chars");
        if (!chars.is_none() && !chars.is_undefined()) str_arg(chars, "strip arg", line);
        return Value::string(py_strip(s, chars, name != "rstrip", name != "lstrip"));
    }
    if (name == "split" || name == "rsplit")
        return str_list(py_split(s, arg(0, "sep"), int_arg(arg(1, "maxsplit"), -1, name.c_str(), line), name == "rsplit", line));
    if (name == "splitlines") return str_list(py_splitlines(s, arg(0, "keepends").truthy()));
    if (name == "upper") return Value::string(py_case(s, 1));
    if (name == "lower" || name == "casefold") return Value::string(py_case(s, 0));
    if (name == "title") return Value::string(py_case(s, 2));
    if (name == "capitalize") return Value::string(py_case(s, 3));
    if (name == "swapcase") {
        std::string out;
        for (uint32_t c : utf8_decode(s)) utf8_append(out, py_lower(c) != c ? py_lower(c) : py_upper(c));
        return Value::string(out);
    }
    if (name == "replace") {
        std::string r = py_replace(s, str_arg(arg(0), "replace() old", line), str_arg(arg(1), "replace() new", line),
                                   int_arg(arg(2, "count"), -1, "replace", line));
        in.check_size(r.size(), line);
        return Value::string(std::move(r));
    }
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
        std::string sub = str_arg(arg(0), (name + "() argument").c_str(), line);
        int64_t off;
        std::string_view hay = sub_range(s, arg(1), arg(2), line, off);
        if (name == "count") {
            if (sub.empty()) return Value::integer((int64_t)utf8_length(hay) + 1);
            int64_t cnt = 0;
            for (size_t p = hay.find(sub); p != std::string_view::npos; p = hay.find(sub, p + sub.size())) ++cnt;
            return Value::integer(cnt);
        }
        size_t p = (name == "find" || name == "index") ? hay.find(sub) : hay.rfind(sub);
        if (p == std::string_view::npos) {
            if (name == "index" || name == "rindex") fail(line, "substring not found");
            return Value::integer(-1);
        }
        return Value::integer(off + byte_to_cp(hay, p));
    }
    if (name == "startswith" || name == "endswith") {
        Value pre = arg(0);
        int64_t off;
        std::string_view hay = sub_range(s, arg(1), arg(2), line, off);
        std::vector<Value> cands;
        if (pre.is_list() && pre.as_list().tuple) cands = pre.as_list().items;
        else cands.push_back(pre);
        for (const auto& c : cands) {
            std::string p = str_arg(c, (name + " first arg").c_str(), line);
            if (p.size() > hay.size()) continue;
            if (name == "startswith" ? hay.compare(0, p.size(), p) == 0
                                     : hay.compare(hay.size() - p.size(), p.size(), p) == 0)
                return Value::boolean(true);
        }
        return Value::boolean(false);
    }
    if (name == "join") {
        std::string out;
        auto items = in.iterate(arg(0), line);
        for (size_t k = 0; k < items.size(); ++k) {
            if (!items[k].is_string())
                fail(line, "sequence item " + std::to_string(k) + ": expected str instance, " + items[k].type_name() + " found");
            if (k) out += s;
            out += items[k].s;
            in.check_size(out.size(), line);
        }
        return Value::string(std::move(out));
    }
    if (name == "format") return Value::string(str_format(in, s, args, line));
    if (name.rfind("is", 0) == 0) {
        auto cps = utf8_decode(s);
        if (cps.empty()) return Value::boolean(false);
        bool all = true, any_cased = false;
        if (name == "islower" || name == "isupper") {
            for (uint32_t c : cps) {
                bool lower = py_upper(c) != c, upper = py_lower(c) != c;
                if (lower || upper) any_cased = true;
                if (name == "islower" ? upper : lower) all = false;
            }
            return Value::boolean(all && any_cased);
        }
        if (name == "istitle") return Value::boolean(py_case(s, 2) == s && py_case(s, 0) != py_case(s, 1));
        for (uint32_t c : cps) {
            bool ok = name == "isspace" ? py_isspace(c)
                      : name == "isalpha" ? py_isalpha(c)
                      : name == "isalnum" ? py_isalnum(c)
                                          : py_isdigit(c);
            all = all && ok;
        }
        return Value::boolean(all);
    }
    if (name == "zfill") {
        int64_t w = int_arg(arg(0), 0, "zfill", line);
        int64_t len = (int64_t)utf8_length(s);
        if (w <= len) return Value::string(s);
        std::string r = s;
        size_t at = (!r.empty() && (r[0] == '+' || r[0] == '-')) ? 1 : 0;
        r.insert(at, (size_t)(w - len), '0');
        return Value::string(r);
    }
    if (name == "center" || name == "ljust" || name == "rjust") {
        int64_t w = int_arg(arg(0), 0, name.c_str(), line);
        if (w > (int64_t)in.opt().max_output_bytes) in.check_size(SIZE_MAX, line);
        Value f = arg(1, "fillchar");
        std::string fill = f.is_string() ? f.s : " ";
        if (name == "center") return Value::string(pad_center(s, w, fill));
        int64_t len = (int64_t)utf8_length(s);
        std::string pad;
        for (int64_t k = len; k < w; ++k) pad += fill;
        return Value::string(name == "ljust" ? s + pad : pad + s);
    }
    if (name == "partition" || name == "rpartition") {
        std::string sep = str_arg(arg(0), "partition", line);
        if (sep.empty()) fail(line, "empty separator");
        size_t p = name == "partition" ? s.find(sep) : s.rfind(sep);
        std::vector<Value> parts;
        if (p == std::string::npos) {
            if (name == "partition") parts = {Value::string(s), Value::string(""), Value::string("")};
            else parts = {Value::string(""), Value::string(""), Value::string(s)};
        } else {
            parts = {Value::string(s.substr(0, p)), Value::string(sep), Value::string(s.substr(p + sep.size()))};
        }
        return Value::list(std::move(parts), true);
    }
    if (name == "removeprefix" || name == "removesuffix") {
        std::string a = str_arg(arg(0), name.c_str(), line);
        if (name == "removeprefix" && s.compare(0, a.size(), a) == 0) return Value::string(s.substr(a.size()));
        if (name == "removesuffix" && !a.empty() && s.size() >= a.size() &&
            s.compare(s.size() - a.size(), a.size(), a) == 0)
            return Value::string(s.substr(0, s.size() - a.size()));
        return Value::string(s);
    }
    fail(line, "unsupported str method '" + name + "'");
}

Value list_method(Interp& in, const Value& self, const std::string& name, Args& args, int line) {
    auto& items = self.as_list().items;
    auto arg = [&](size_t k) { return k < args.pos.size() ? args.pos[k] : Value::undefined(); };
    if (name == "append") {
        in.check_size((items.size() + 1) * sizeof(Value), line);
        items.push_back(arg(0));
        return Value::none();
    }
    if (name == "extend") {
        for (auto& v : in.iterate(arg(0), line)) items.push_back(v);
        in.check_size(items.size() * sizeof(Value), line);
        return Value::none();
    }
    if (name == "insert") {
        int64_t n = (int64_t)items.size(), k = int_arg(arg(0), 0, "insert", line);
        if (k < 0) k = std::max<int64_t>(0, k + n);
        k = std::min(k, n);
        items.insert(items.begin() + k, arg(1));
        return Value::none();
    }
    if (name == "pop") {
        if (items.empty()) fail(line, "pop from empty list");
        int64_t n = (int64_t)items.size(), k = int_arg(arg(0), -1, "pop", line);
        if (k < 0) k += n;
        if (k < 0 || k >= n) fail(line, "pop index out of range");
        Value v = items[(size_t)k];
        items.erase(items.begin() + k);
        return v;
    }
    if (name == "remove") {
        for (size_t k = 0; k < items.size(); ++k)
            if (values_equal(items[k], arg(0))) {
                items.erase(items.begin() + (ptrdiff_t)k);
                return Value::none();
            }
        fail(line, "list.remove(x): x not in list");
    }
    if (name == "clear") {
        items.clear();
        return Value::none();
    }
    if (name == "index") {
        for (size_t k = 0; k < items.size(); ++k)
            if (values_equal(items[k], arg(0))) return Value::integer((int64_t)k);
        fail(line, arg(0).repr() + " is not in list");
    }
    if (name == "count") {
        int64_t c = 0;
        for (auto& v : items) c += values_equal(v, arg(0)) ? 1 : 0;
        return Value::integer(c);
    }
    if (name == "copy") return Value::list(items, self.as_list().tuple);
    if (name == "reverse") {
        std::reverse(items.begin(), items.end());
        return Value::none();
    }
    fail(line, "unsupported list method '" + name + "'");
}

Value dict_method(Interp& in, const Value& self, const std::string& name, Args& args, int line) {
    auto& d = self.as_dict();
    auto arg = [&](size_t k) { return k < args.pos.size() ? args.pos[k] : Value::undefined(); };
    if (name == "items" || name == "keys" || name == "values") {
        std::vector<Value> out;
        out.reserve(d.items.size());
        for (auto& kv : d.items) {
            if (name == "items") out.push_back(Value::list({kv.first, kv.second}, true));
            else out.push_back(name == "keys" ? kv.first : kv.second);
        }
        return Value::list(std::move(out));
    }
    if (name == "get" || name == "pop" || name == "setdefault") {
        Value key = arg(0);
        if (key.is_undefined()) fail(line, name + "() expects at least 1 argument");
        Value def = args.pos.size() > 1 ? args.pos[1] : Value::none();
        Value* v = d.find(key);
        if (name == "get") return v ? *v : def;
        if (name == "setdefault") {
            if (v) return *v;
            d.set(key, def);
            return def;
        }
        if (!v) {
            if (args.pos.size() > 1) return def;
            fail(line, "KeyError: " + key.repr());
        }
        Value r = *v;
        d.erase(key);
        return r;
    }
    if (name == "copy") {
        Value c = Value::dict();
        c.as_dict().items = d.items;
        return c;
    }
    if (name == "update") {
        if (!args.pos.empty()) {
            const Value& o = args.pos[0];
            if (o.is_dict()) {
                for (auto& kv : o.as_dict().items) d.set(kv.first, kv.second);
            } else {
                for (auto& pair : in.iterate(o, line)) {
                    auto kv = in.iterate(pair, line);
                    if (kv.size() != 2) fail(line, "dictionary update sequence element has wrong length");
                    d.set(kv[0], kv[1]);
                }
            }
        }
        for (auto& kv : args.kw) d.set(std::string_view(kv.first), kv.second);
        return Value::none();
    }
    if (name == "clear") {
        d.items.clear();
        return Value::none();
    }
    fail(line, "unsupported dict method '" + name + "'");
}

}  // namespace

Value builtin_method(Interp& in, const Value& obj, const std::string& name) {
    (void)in;
    switch (obj.t) {
        case Value::T::String:
            if (!kStrMethods.count(name)) break;
            return Value::func(name, [obj, name](Interp& i, Args& a, int line) { return string_method(i, obj.s, name, a, line); });
        case Value::T::List:
            if (obj.as_list().lazy || !(obj.as_list().tuple ? kTupleMethods : kListMethods).count(name)) break;
            return Value::func(name, [obj, name](Interp& i, Args& a, int line) { return list_method(i, obj, name, a, line); });
        case Value::T::Dict:
            if (obj.as_dict().is_namespace || !kDictMethods.count(name)) break;
            return Value::func(name, [obj, name](Interp& i, Args& a, int line) { return dict_method(i, obj, name, a, line); });
        default: break;
    }
    return Value::undefined();
}

}  // namespace yiti::jinja::detail
