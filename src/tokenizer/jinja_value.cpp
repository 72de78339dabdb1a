// Jinja values with Python semantics: truthiness, str()/repr(), equality and ordering, JSON
// conversion in both directions, and UTF-8 helpers (Python strings index by code point).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "tokenizer/jinja_internal.h"

namespace yiti::jinja::detail {

// ---------------------------------------------------------------------------------------------
// UTF-8. Invalid bytes decode to U+DC80..U+DCFF (like Python's surrogateescape) and encode back to
// the same byte, so text that is not valid UTF-8 passes through slicing unchanged.

std::vector<uint32_t> utf8_decode(std::string_view s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    size_t i = 0, n = s.size();
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            out.push_back(c);
            ++i;
            continue;
        }
        int len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? (c <= 0xEF ? 3 : 0) : c >= 0xC2 ? 2 : 0;
        uint32_t cp = len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
        bool ok = len > 0 && i + (size_t)len <= n;
        for (int k = 1; ok && k < len; ++k) {
            unsigned char cc = (unsigned char)s[i + (size_t)k];
            if ((cc & 0xC0) != 0x80) ok = false;
            else cp = (cp << 6) | (cc & 0x3Fu);
        }
        if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
                   (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
            ok = false;
        if (!ok) {
            out.push_back(0xDC00u + c);
            ++i;
            continue;
        }
        out.push_back(cp);
        i += (size_t)len;
    }
    return out;
}

void utf8_append(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += (char)cp;
    } else if (cp < 0x800) {
        out += (char)(0xC0 | (cp >> 6));
        out += (char)(0x80 | (cp & 0x3F));
    } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
        out += (char)(cp - 0xDC00);  // an invalid byte carried through
    } else if (cp < 0x10000) {
        out += (char)(0xE0 | (cp >> 12));
        out += (char)(0x80 | ((cp >> 6) & 0x3F));
        out += (char)(0x80 | (cp & 0x3F));
    } else {
        out += (char)(0xF0 | (cp >> 18));
        out += (char)(0x80 | ((cp >> 12) & 0x3F));
        out += (char)(0x80 | ((cp >> 6) & 0x3F));
        out += (char)(0x80 | (cp & 0x3F));
    }
}

std::string utf8_encode(const std::vector<uint32_t>& cps, size_t from, size_t to) {
    std::string s;
    s.reserve(to > from ? to - from : 0);
    for (size_t i = from; i < to && i < cps.size(); ++i) utf8_append(s, cps[i]);
    return s;
}

size_t utf8_length(std::string_view s) {
    bool ascii = true;
    for (char c : s)
        if ((unsigned char)c >= 0x80) {
            ascii = false;
            break;
        }
    return ascii ? s.size() : utf8_decode(s).size();
}

bool py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (enough for the text chat
// templates transform; other scripts are left unchanged).
uint32_t py_upper(uint32_t c) {
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c < 0x80) return c;
    if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
    if (c == 0xFF) return 0x178;
    if (c >= 0x100 && c <= 0x17F) {
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c % 2 == 0) ? c - 1 : c;
        if (c == 0x131 || c == 0x138 || c == 0x149 || c == 0x17F) return c == 0x131 ? 'I' : c;
        return (c % 2 == 1) ? c - 1 : c;
    }
    if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
    if (c == 0x3C2) return 0x3A3;
    if (c >= 0x430 && c <= 0x44F) return c - 32;
    if (c >= 0x450 && c <= 0x45F) return c - 80;
    return c;
}

uint32_t py_lower(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0x80) return c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c == 0x178) return 0xFF;
    if (c >= 0x100 && c <= 0x17F) {
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c % 2 == 1) ? c + 1 : c;
        if (c == 0x130 || c == 0x138 || c == 0x149 || c == 0x17F) return c == 0x130 ? 'i' : c;
        return (c % 2 == 0) ? c + 1 : c;
    }
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}

bool py_isdigit(uint32_t c) { return c >= '0' && c <= '9'; }
bool py_isalpha(uint32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    // Treat letters of the scripts we case-map, and CJK/other non-punctuation ranges, as letters.
    if (py_isspace(c)) return false;
    if (c < 0xC0) return c == 0xAA || c == 0xB5 || c == 0xBA;
    if (c == 0xD7 || c == 0xF7) return false;
    if (c >= 0x2000 && c <= 0x2BFF) return false;  // punctuation, symbols, arrows, ...
    if (c >= 0x3000 && c <= 0x303F) return false;  // CJK punctuation
    if (c >= 0xFF00 && c <= 0xFF0F) return false;
    if (c >= 0xDC80 && c <= 0xDCFF) return false;
    return true;
}
bool py_isalnum(uint32_t c) { return py_isdigit(c) || py_isalpha(c); }

// ---------------------------------------------------------------------------------------------
// Objects

ObjRegistry*& current_registry() {
    static thread_local ObjRegistry* r = nullptr;
    return r;
}

void ObjRegistry::add(const std::shared_ptr<Obj>& o) {
    if (objs.size() >= prune_at) {
        objs.erase(std::remove_if(objs.begin(), objs.end(), [](const std::weak_ptr<Obj>& w) { return w.expired(); }),
                   objs.end());
        prune_at = std::max<size_t>(4096, objs.size() * 2);
    }
    objs.push_back(o);
}

void ObjRegistry::release_all() {
    // Releasing one object may free others; their weak_ptrs then simply fail to lock.
    for (size_t k = 0; k < objs.size(); ++k)
        if (auto p = objs[k].lock()) p->release();
    objs.clear();
}

Value Value::list(std::vector<Value> items, bool tuple) {
    auto l = new_obj<ListObj>();
    l->items = std::move(items);
    l->tuple = tuple;
    Value v;
    v.t = T::List;
    v.o = std::move(l);
    return v;
}

Value Value::lazy_list(std::vector<Value> items) {
    Value v = list(std::move(items));
    v.as_list().lazy = true;
    return v;
}

Value Value::dict() {
    Value v;
    v.t = T::Dict;
    v.o = new_obj<DictObj>();
    return v;
}

Value Value::func(std::string name, NativeFn fn) {
    auto f = new_obj<FuncObj>();
    f->name = std::move(name);
    f->fn = std::move(fn);
    Value v;
    v.t = T::Func;
    v.o = std::move(f);
    return v;
}

ListObj& Value::as_list() const { return *static_cast<ListObj*>(o.get()); }
DictObj& Value::as_dict() const { return *static_cast<DictObj*>(o.get()); }
FuncObj& Value::as_func() const { return *static_cast<FuncObj*>(o.get()); }
LoopObj& Value::as_loop() const { return *static_cast<LoopObj*>(o.get()); }

Value* DictObj::find(const Value& key) {
    if (key.t == Value::T::String) return find(std::string_view(key.s));
    for (auto& kv : items)
        if (values_equal(kv.first, key)) return &kv.second;
    return nullptr;
}

Value* DictObj::find(std::string_view key) {
    for (auto& kv : items)
        if (kv.first.t == Value::T::String && kv.first.s == key) return &kv.second;
    return nullptr;
}

void DictObj::set(const Value& key, Value v) {
    if (Value* p = find(key)) {
        *p = std::move(v);
        return;
    }
    items.emplace_back(key, std::move(v));
}

bool DictObj::erase(const Value& key) {
    for (size_t i = 0; i < items.size(); ++i) {
        if (values_equal(items[i].first, key)) {
            items.erase(items.begin() + (ptrdiff_t)i);
            return true;
        }
    }
    return false;
}

Value* Frame::find_local(std::string_view name) {
    for (auto& kv : vars)
        if (kv.first == name) return &kv.second;
    return nullptr;
}

Value* Frame::lookup(std::string_view name) {
    for (Frame* f = this; f; f = f->parent.get())
        if (Value* v = f->find_local(name)) return v;
    return nullptr;
}

void Frame::set(std::string_view name, Value v) {
    if (Value* p = find_local(name)) *p = std::move(v);
    else vars.emplace_back(std::string(name), std::move(v));
}

// ---------------------------------------------------------------------------------------------
// Python semantics

bool Value::truthy() const {
    switch (t) {
        case T::Undefined:
        case T::None: return false;
        case T::Bool: return b;
        case T::Int: return i != 0;
        case T::Float: return f != 0.0;
        case T::String: return !s.empty();
        case T::List: return as_list().lazy || !as_list().items.empty();
        case T::Dict: return as_dict().is_namespace || !as_dict().items.empty();
        case T::Func:
        case T::Loop: return true;
    }
    return false;
}

std::string Value::type_name() const {
    switch (t) {
        case T::Undefined: return "Undefined";
        case T::None: return "NoneType";
        case T::Bool: return "bool";
        case T::Int: return "int";
        case T::Float: return "float";
        case T::String: return "str";
        case T::List: return as_list().lazy ? "generator" : as_list().tuple ? "tuple" : "list";
        case T::Dict: return as_dict().is_namespace ? "Namespace" : "dict";
        case T::Func: return "function";
        case T::Loop: return "LoopContext";
    }
    return "object";
}

std::string format_float(double x) {
    if (std::isnan(x)) return "nan";
    if (std::isinf(x)) return x < 0 ? "-inf" : "inf";
    if (x == 0) return std::signbit(x) ? "-0.0" : "0.0";
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
    std::string sci(buf, res.ptr);
    // sci looks like "-d.ddde+XX"
    bool neg = sci[0] == '-';
    if (neg) sci.erase(0, 1);
    size_t epos = sci.find('e');
    std::string mant = sci.substr(0, epos);
    int exp10 = std::stoi(sci.substr(epos + 1));
    std::string digits;
    for (char c : mant)
        if (c != '.') digits += c;
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    int decpt = exp10 + 1;  // value = 0.digits * 10^decpt
    std::string out = neg ? "-" : "";
    int nd = (int)digits.size();
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out += "0." + std::string((size_t)(-decpt), '0') + digits;
        } else if (decpt >= nd) {
            out += digits + std::string((size_t)(decpt - nd), '0') + ".0";
        } else {
            out += digits.substr(0, (size_t)decpt) + "." + digits.substr((size_t)decpt);
        }
    } else {
        out += digits.substr(0, 1);
        if (nd > 1) out += "." + digits.substr(1);
        int e = decpt - 1;
        char eb[32];
        snprintf(eb, sizeof eb, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
        out += eb;
    }
    return out;
}

namespace {

bool py_isprintable(uint32_t c) {
    if (c < 0x20 || c == 0x7F) return false;
    if (c < 0x7F) return true;
    if (c <= 0xA0 || c == 0xAD) return false;
    if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
        (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB))
        return false;
    if ((c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x180E) return false;
    if ((c >= 0xD800 && c <= 0xDFFF) || (c >= 0xE000 && c <= 0xF8FF) || c >= 0xF0000) return false;
    if (c == 0xFFFE || c == 0xFFFF) return false;
    return true;
}

void repr_string(std::string& out, const std::string& s) {
    bool has_sq = s.find('\'') != std::string::npos;
    bool has_dq = s.find('"') != std::string::npos;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    out += q;
    for (uint32_t c : utf8_decode(s)) {
        if (c == (uint32_t)q || c == '\\') {
            out += '\\';
            out += (char)c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (!py_isprintable(c)) {
            char b[16];
            if (c < 0x100) snprintf(b, sizeof b, "\\x%02x", c);
            else if (c < 0x10000) snprintf(b, sizeof b, "\\u%04x", c);
            else snprintf(b, sizeof b, "\\U%08x", c);
            out += b;
        } else {
            utf8_append(out, c);
        }
    }
    out += q;
}

void repr_into(std::string& out, const Value& v, int depth) {
    if (depth > 200) {
        out += "...";
        return;
    }
    switch (v.t) {
        case Value::T::Undefined: out += "Undefined"; return;
        case Value::T::String: repr_string(out, v.s); return;
        case Value::T::List: {
            const auto& l = v.as_list();
            if (l.lazy) {
                out += "<generator object>";
                return;
            }
            out += l.tuple ? '(' : '[';
            for (size_t k = 0; k < l.items.size(); ++k) {
                if (k) out += ", ";
                repr_into(out, l.items[k], depth + 1);
            }
            if (l.tuple && l.items.size() == 1) out += ',';
            out += l.tuple ? ')' : ']';
            return;
        }
        case Value::T::Dict: {
            const auto& d = v.as_dict();
            if (d.is_namespace) out += "<Namespace ";
            out += '{';
            for (size_t k = 0; k < d.items.size(); ++k) {
                if (k) out += ", ";
                repr_into(out, d.items[k].first, depth + 1);
                out += ": ";
                repr_into(out, d.items[k].second, depth + 1);
            }
            out += '}';
            if (d.is_namespace) out += '>';
            return;
        }
        default: out += v.str(); return;
    }
}

}  // namespace

std::string Value::str() const {
    switch (t) {
        case T::Undefined: return "";
        case T::None: return "None";
        case T::Bool: return b ? "True" : "False";
        case T::Int: return std::to_string(i);
        case T::Float: return format_float(f);
        case T::String: return s;
        case T::List:
        case T::Dict: return repr();
        case T::Func: return "<function " + as_func().name + ">";
        case T::Loop: return "<LoopContext>";
    }
    return "";
}

std::string Value::repr() const {
    std::string out;
    repr_into(out, *this, 0);
    return out;
}

bool values_equal(const Value& a, const Value& b) {
    using T = Value::T;
    if (a.is_number() && b.is_number()) {
        if (a.t == T::Float || b.t == T::Float) return a.as_float() == b.as_float();
        return a.as_int() == b.as_int();
    }
    if (a.t != b.t) return false;
    switch (a.t) {
        case T::Undefined:
        case T::None: return true;
        case T::String: return a.s == b.s;
        case T::List: {
            const auto& x = a.as_list();
            const auto& y = b.as_list();
            if (x.lazy || y.lazy) return a.o == b.o;
            if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
            for (size_t k = 0; k < x.items.size(); ++k)
                if (!values_equal(x.items[k], y.items[k])) return false;
            return true;
        }
        case T::Dict: {
            auto& x = a.as_dict();
            auto& y = b.as_dict();
            if (x.is_namespace || y.is_namespace) return a.o == b.o;
            if (x.items.size() != y.items.size()) return false;
            for (auto& kv : x.items) {
                Value* other = y.find(kv.first);
                if (!other || !values_equal(kv.second, *other)) return false;
            }
            return true;
        }
        default: return a.o == b.o;
    }
}

int compare_values(const Value& a, const Value& b, int line) {
    using T = Value::T;
    if (a.is_number() && b.is_number()) {
        if (a.t == T::Float || b.t == T::Float) {
            double x = a.as_float(), y = b.as_float();
            return x < y ? -1 : x > y ? 1 : 0;
        }
        int64_t x = a.as_int(), y = b.as_int();
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.t == T::String && b.t == T::String) {
        int c = a.s.compare(b.s);
        return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    if (a.t == T::List && b.t == T::List && a.as_list().tuple == b.as_list().tuple && !a.as_list().lazy &&
        !b.as_list().lazy) {
        const auto& x = a.as_list().items;
        const auto& y = b.as_list().items;
        for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
            if (values_equal(x[k], y[k])) continue;
            return compare_values(x[k], y[k], line);
        }
        return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
    }
    if (a.is_undefined() || b.is_undefined()) fail(line, "cannot compare an undefined value");
    fail(line, "'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

namespace {

Value from_json_at(const nlohmann::ordered_json& j, int depth) {
    using J = nlohmann::ordered_json;
    if (depth > 1000) fail(0, "context value nested too deeply");
    switch (j.type()) {
        case J::value_t::null: return Value::none();
        case J::value_t::boolean: return Value::boolean(j.get<bool>());
        case J::value_t::number_integer: return Value::integer(j.get<int64_t>());
        case J::value_t::number_unsigned: {
            uint64_t u = j.get<uint64_t>();
            if (u > (uint64_t)INT64_MAX) return Value::number((double)u);
            return Value::integer((int64_t)u);
        }
        case J::value_t::number_float: return Value::number(j.get<double>());
        case J::value_t::string: return Value::string(j.get<std::string>());
        case J::value_t::array: {
            std::vector<Value> items;
            items.reserve(j.size());
            for (const auto& e : j) items.push_back(from_json_at(e, depth + 1));
            return Value::list(std::move(items));
        }
        case J::value_t::object: {
            Value d = Value::dict();
            auto& dict = d.as_dict();
            dict.items.reserve(j.size());
            for (auto it = j.begin(); it != j.end(); ++it)
                dict.items.emplace_back(Value::string(it.key()), from_json_at(it.value(), depth + 1));
            return d;
        }
        case J::value_t::binary:
        case J::value_t::discarded: return Value::none();
    }
    return Value::none();
}

}  // namespace

Value value_from_json(const nlohmann::ordered_json& j) { return from_json_at(j, 0); }

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
    out += '"';
    auto esc = [&](uint32_t c) {
        char b[16];
        snprintf(b, sizeof b, "\\u%04x", c);
        out += b;
    };
    if (!ensure_ascii) {
        for (char ch : s) {
            unsigned char c = (unsigned char)ch;
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                default:
                    if (c < 0x20) esc(c);
                    else out += ch;
            }
        }
    } else {
        for (uint32_t c : utf8_decode(s)) {
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                default:
                    if (c >= 0x20 && c < 0x7F) {
                        out += (char)c;
                    } else if (c < 0x10000) {
                        esc(c);
                    } else {
                        uint32_t v = c - 0x10000;
                        esc(0xD800 + (v >> 10));
                        esc(0xDC00 + (v & 0x3FF));
                    }
            }
        }
    }
    out += '"';
}

namespace {

void json_into(std::string& out, const Value& v, const JsonStyle& st, int level, int line) {
    if (level > 200) fail(line, "tojson: value nested too deeply (recursive structure?)");
    auto newline = [&](int lvl) {
        out += '\n';
        for (int k = 0; k < lvl; ++k) out += st.indent;
    };
    switch (v.t) {
        case Value::T::None: out += "null"; return;
        case Value::T::Bool: out += v.b ? "true" : "false"; return;
        case Value::T::Int: out += std::to_string(v.i); return;
        case Value::T::Float:
            if (std::isnan(v.f)) out += "NaN";
            else if (std::isinf(v.f)) out += v.f < 0 ? "-Infinity" : "Infinity";
            else out += format_float(v.f);
            return;
        case Value::T::String: append_json_string(out, v.s, st.ensure_ascii); return;
        case Value::T::List: {
            if (v.as_list().lazy) break;
            const auto& items = v.as_list().items;
            if (items.empty()) {
                out += "[]";
                return;
            }
            out += '[';
            if (st.has_indent) newline(level + 1);
            for (size_t k = 0; k < items.size(); ++k) {
                if (k) {
                    out += st.item_sep;
                    if (st.has_indent) newline(level + 1);
                }
                json_into(out, items[k], st, level + 1, line);
            }
            if (st.has_indent) newline(level);
            out += ']';
            return;
        }
        case Value::T::Dict: {
            const auto& d = v.as_dict();
            if (d.is_namespace) break;
            if (d.items.empty()) {
                out += "{}";
                return;
            }
            std::vector<std::pair<std::string, const Value*>> items;
            items.reserve(d.items.size());
            for (const auto& kv : d.items) {
                const Value& k = kv.first;
                std::string key;
                switch (k.t) {
                    case Value::T::String: key = k.s; break;
                    case Value::T::Int: key = std::to_string(k.i); break;
                    case Value::T::Bool: key = k.b ? "true" : "false"; break;
                    case Value::T::None: key = "null"; break;
                    case Value::T::Float: {
                        std::string tmp;
                        json_into(tmp, k, st, level + 1, line);
                        key = tmp;
                        break;
                    }
                    default:
                        fail(line, "tojson: keys must be str, int, float, bool or None, not " + k.type_name());
                }
                items.emplace_back(std::move(key), &kv.second);
            }
            if (st.sort_keys)
                std::stable_sort(items.begin(), items.end(),
                                 [](const auto& x, const auto& y) { return x.first < y.first; });
            out += '{';
            if (st.has_indent) newline(level + 1);
            for (size_t k = 0; k < items.size(); ++k) {
                if (k) {
                    out += st.item_sep;
                    if (st.has_indent) newline(level + 1);
                }
                append_json_string(out, items[k].first, st.ensure_ascii);
                out += st.key_sep;
                json_into(out, *items[k].second, st, level + 1, line);
            }
            if (st.has_indent) newline(level);
            out += '}';
            return;
        }
        default: break;
    }
    fail(line, "tojson: object of type " + v.type_name() + " is not JSON serializable");
}

}  // namespace

std::string to_json(const Value& v, const JsonStyle& style, int line) {
    std::string out;
    json_into(out, v, style, 0, line);
    return out;
}

}  // namespace yiti::jinja::detail
