// Jinja2's builtin filters, tests and the global functions chat templates use.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <unordered_map>

#include "tokenizer/jinja_internal.h"

namespace yiti::jinja::detail {

std::vector<Value> bind_args(const Args& args, std::initializer_list<const char*> names, const char* what, int line) {
    std::vector<Value> out(names.size());
    if (args.pos.size() > names.size())
        fail(line, std::string(what) + ": takes at most " + std::to_string(names.size()) + " argument(s), " +
                       std::to_string(args.pos.size()) + " given");
    for (size_t k = 0; k < args.pos.size(); ++k) out[k] = args.pos[k];
    for (const auto& kv : args.kw) {
        size_t k = 0;
        for (const char* n : names) {
            if (kv.first == n) break;
            ++k;
        }
        if (k == names.size()) fail(line, std::string(what) + ": unexpected keyword argument '" + kv.first + "'");
        out[k] = kv.second;
    }
    return out;
}

std::string html_escape(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&#34;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

namespace {

using FilterFn = Value (*)(Interp&, Value&, Args&, int);
using TestFn = bool (*)(Interp&, const Value&, Args&, int);

bool given(const Value& v) { return !v.is_undefined(); }

int64_t to_int(const Value& v, const char* what, int line) {
    if (!v.is_int()) fail(line, std::string(what) + ": expected an integer, got " + v.type_name());
    return v.as_int();
}

// Jinja2's make_attrgetter: "a.b.0" looks up a, then b, then index 0 (subscript semantics).
Value attr_path(Interp& in, const Value& v, const std::string& path, int line) {
    Value cur = v;
    size_t start = 0;
    while (true) {
        size_t dot = path.find('.', start);
        std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
        cur = in.getitem(cur, digits ? Value::integer(std::stoll(part)) : Value::string(part), line);
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return cur;
}

// Key function for case-insensitive sorting/uniqueness (Jinja2's ignore_case).
Value sort_key(const Value& v, bool case_sensitive) {
    if (!case_sensitive && v.is_string()) return Value::string(py_case(v.s, 0));
    return v;
}

// Jinja2's soft_str keeps Markup: string filters on a Markup value return Markup.
Value same_kind(const Value& in, std::string s) {
    return (in.is_string() && in.markup) ? Value::markup_string(std::move(s)) : Value::string(std::move(s));
}

std::vector<Value> to_items(Interp& in, const Value& v, int line) { return in.iterate(v, line); }

// Python int(str, base) for the `int` filter; false when it does not parse.
bool parse_int(const std::string& text, int base, int64_t& out) {
    std::string s = py_strip(text, Value::none(), true, true);
    size_t i = 0;
    bool neg = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (base == 0 || base == 16 || base == 8 || base == 2) {
        if (i + 1 < s.size() && s[i] == '0') {
            char p = (char)(s[i + 1] | 0x20);
            int b = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
            if (b && (base == 0 || base == b)) {
                base = b;
                i += 2;
                if (i < s.size() && s[i] == '_') ++i;
            }
        }
        if (base == 0) base = 10;
    }
    if (i >= s.size()) return false;
    uint64_t v = 0;
    bool prev_us = true;
    for (; i < s.size(); ++i) {
        char c = s[i];
        if (c == '_') {
            if (prev_us) return false;
            prev_us = true;
            continue;
        }
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'z' ? c - 'a' + 10 : c >= 'A' && c <= 'Z' ? c - 'A' + 10 : 99;
        if (d >= base) return false;
        prev_us = false;
        uint64_t nv = v * (uint64_t)base + (uint64_t)d;
        if (nv / (uint64_t)base != v || nv > (uint64_t)INT64_MAX) return false;
        v = nv;
    }
    if (prev_us) return false;
    out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

bool parse_float(const std::string& text, double& out) {
    std::string s = py_strip(text, Value::none(), true, true);
    if (s.empty()) return false;
    std::string clean;
    for (size_t k = 0; k < s.size(); ++k) {
        if (s[k] == '_') {
            if (k == 0 || k + 1 == s.size() || !isdigit((unsigned char)s[k - 1]) || !isdigit((unsigned char)s[k + 1]))
                return false;
            continue;
        }
        clean += s[k];
    }
    std::string low = py_case(clean, 0);
    size_t off = (low[0] == '+' || low[0] == '-') ? 1 : 0;
    std::string body = low.substr(off);
    if (body == "inf" || body == "infinity" || body == "nan") {
        out = body == "nan" ? NAN : INFINITY;
        if (low[0] == '-') out = -out;
        return true;
    }
    if (body.find_first_not_of("0123456789.e+-") != std::string::npos) return false;
    char* end = nullptr;
    out = strtod(clean.c_str(), &end);
    return end && *end == 0;
}

Value do_round(Value v, int64_t precision, const std::string& method, int line) {
    if (!v.is_number()) fail(line, "round: expected a number, got " + v.type_name());
    if (method != "common" && method != "ceil" && method != "floor")
        fail(line, "round: method must be common, ceil or floor");
    if (method == "common") {
        if (v.t != Value::T::Float) return Value::integer(v.as_int());
        double x = v.f;
        if (!std::isfinite(x)) return v;
        if (precision == 0) return Value::number(std::nearbyint(x));
        if (precision > 0 && precision < 300) {
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", (int)precision, x);
            return Value::number(strtod(buf, nullptr));
        }
        double p = std::pow(10.0, (double)-precision);
        return Value::number(std::nearbyint(x / p) * p);
    }
    double p = std::pow(10.0, (double)precision);
    double x = v.as_float() * p;
    x = method == "ceil" ? std::ceil(x) : std::floor(x);
    return Value::number(x / p);
}

std::string indent_text(const std::string& text, const std::string& ind, bool first, bool blank) {
    std::string s = text + "\n";
    std::vector<std::string> lines = py_splitlines(s, false);
    std::string rv;
    if (blank) {
        for (size_t k = 0; k < lines.size(); ++k) {
            if (k) rv += "\n" + ind;
            rv += lines[k];
        }
    } else {
        rv = lines.empty() ? "" : lines[0];
        for (size_t k = 1; k < lines.size(); ++k) {
            rv += "\n";
            if (!lines[k].empty()) rv += ind;
            rv += lines[k];
        }
    }
    if (first) rv = ind + rv;
    return rv;
}

// select/reject/selectattr/rejectattr
Value select_impl(Interp& in, Value& v, Args& args, int line, bool lookup_attr, bool keep) {
    size_t off = 0;
    std::string attr;
    if (lookup_attr) {
        if (args.pos.empty()) fail(line, "missing parameter for attribute name");
        if (!args.pos[0].is_string()) fail(line, "attribute name must be a string");
        attr = args.pos[0].s;
        off = 1;
    }
    bool has_test = args.pos.size() > off;
    std::string test;
    Args targs;
    if (has_test) {
        if (!args.pos[off].is_string()) fail(line, "test name must be a string");
        test = args.pos[off].s;
        targs.pos.assign(args.pos.begin() + (ptrdiff_t)off + 1, args.pos.end());
        targs.kw = args.kw;
        if (!in.has_test(test)) fail(line, "unsupported test '" + test + "'");
    }
    std::vector<Value> out;
    if (!v.truthy()) return Value::lazy_list({});  // Jinja2: `if value:` before iterating
    for (auto& item : to_items(in, v, line)) {
        Value x = lookup_attr ? attr_path(in, item, attr, line) : item;
        bool r = has_test ? in.apply_test(test, x, targs, line) : x.truthy();
        if (r == keep) out.push_back(item);
    }
    return Value::lazy_list(std::move(out));
}

Value minmax(Interp& in, Value& v, Args& args, int line, bool want_max) {
    auto a = bind_args(args, {"case_sensitive", "attribute"}, want_max ? "max" : "min", line);
    bool cs = a[0].truthy();
    auto items = to_items(in, v, line);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    auto key = [&](const Value& x) {
        return sort_key(a[1].is_string() ? attr_path(in, x, a[1].s, line) : x, cs);
    };
    size_t best = 0;
    Value bk = key(items[0]);
    for (size_t k = 1; k < items.size(); ++k) {
        Value kk = key(items[k]);
        int c = compare_values(kk, bk, line);
        if (want_max ? c > 0 : c < 0) {
            best = k;
            bk = kk;
        }
    }
    return items[best];
}

const std::unordered_map<std::string, FilterFn>& filter_table() {
    static const std::unordered_map<std::string, FilterFn> table = {
        {"abs",
         [](Interp&, Value& v, Args&, int line) -> Value {
             if (v.t == Value::T::Float) return Value::number(std::fabs(v.f));
             if (v.is_int()) {
                 if (v.as_int() == INT64_MIN) fail(line, "integer overflow");
                 return Value::integer(std::llabs(v.as_int()));
             }
             fail(line, "bad operand type for abs(): '" + v.type_name() + "'");
         }},
        {"attr",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"name"}, "attr", line);
             if (!a[0].is_string()) fail(line, "attr: name must be a string");
             return in.getattr(v, a[0].s, line);
         }},
        {"batch",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"linecount", "fill_with"}, "batch", line);
             int64_t n = to_int(a[0], "batch", line);
             if (n <= 0) fail(line, "batch: linecount must be positive");
             std::vector<Value> out, cur;
             for (auto& x : to_items(in, v, line)) {
                 cur.push_back(x);
                 if ((int64_t)cur.size() == n) {
                     out.push_back(Value::list(std::move(cur)));
                     cur.clear();
                 }
             }
             if (!cur.empty()) {
                 if (given(a[1]) && !a[1].is_none())
                     while ((int64_t)cur.size() < n) cur.push_back(a[1]);
                 out.push_back(Value::list(std::move(cur)));
             }
             return Value::lazy_list(std::move(out));
         }},
        {"capitalize", [](Interp&, Value& v, Args&, int) -> Value { return same_kind(v, py_case(v.str(), 3)); }},
        {"center",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"width"}, "center", line);
             int64_t w = given(a[0]) ? to_int(a[0], "center", line) : 80;
             if (w > (int64_t)in.opt().max_output_bytes) in.check_size(SIZE_MAX, line);
             return Value::string(pad_center(v.str(), w, " "));
         }},
        {"default",
         [](Interp&, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"default_value", "boolean"}, "default", line);
             if (v.is_undefined() || (a[1].truthy() && !v.truthy())) return given(a[0]) ? a[0] : Value::string("");
             return v;
         }},
        {"dictsort",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"case_sensitive", "by", "reverse"}, "dictsort", line);
             if (!v.is_dict() || v.as_dict().is_namespace) fail(line, "dictsort: expected a mapping");
             int pos = 0;
             if (a[1].is_string()) {
                 if (a[1].s == "value") pos = 1;
                 else if (a[1].s != "key") fail(line, "dictsort: you can only sort by either \"key\" or \"value\"");
             }
             bool cs = a[0].truthy();
             std::vector<Value> items;
             for (auto& kv : v.as_dict().items) items.push_back(Value::list({kv.first, kv.second}, true));
             std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
                 return compare_values(sort_key(x.as_list().items[(size_t)pos], cs),
                                       sort_key(y.as_list().items[(size_t)pos], cs), line) < 0;
             });
             if (a[2].truthy()) std::reverse(items.begin(), items.end());
             (void)in;
             return Value::list(std::move(items));
         }},
        {"escape",
         [](Interp&, Value& v, Args&, int) -> Value {
             if (v.is_string() && v.markup) return v;
             return Value::markup_string(html_escape(v.str()));
         }},
        {"first",
         [](Interp& in, Value& v, Args&, int line) -> Value {
             if (v.is_string()) {
                 auto cps = utf8_decode(v.s);
                 if (cps.empty()) return Value::undefined("No first item, sequence was empty.");
                 return Value::string(utf8_encode(cps, 0, 1));
             }
             if (v.is_list()) {
                 const auto& items = v.as_list().items;
                 return items.empty() ? Value::undefined("No first item, sequence was empty.") : items[0];
             }
             auto items = to_items(in, v, line);
             return items.empty() ? Value::undefined("No first item, sequence was empty.") : items[0];
         }},
        {"float",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"default"}, "float", line);
             if (v.is_undefined()) in.undefined_error(v, line);  // float(Undefined) raises in Jinja2
             Value def = given(a[0]) ? a[0] : Value::number(0.0);
             if (v.is_number()) return Value::number(v.as_float());
             double d;
             if (v.is_string() && parse_float(v.s, d)) return Value::number(d);
             return def;
         }},
        {"format",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             if (!args.pos.empty() && !args.kw.empty())
                 fail(line, "format: can't handle positional and keyword arguments at the same time");
             Value fargs;
             if (!args.kw.empty()) {
                 fargs = Value::dict();
                 for (auto& kv : args.kw) fargs.as_dict().set(std::string_view(kv.first), kv.second);
             } else {
                 fargs = Value::list(args.pos, true);
             }
             return Value::string(percent_format(in, v.str(), fargs, line));
         }},
        {"indent",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"width", "first", "blank"}, "indent", line);
             if (v.is_undefined()) in.undefined_error(v, line);
             if (!v.is_string()) fail(line, "indent: expected a string, got " + v.type_name());
             std::string ind = "    ";
             if (a[0].is_string()) ind = a[0].s;
             else if (given(a[0])) ind = std::string((size_t)std::max<int64_t>(0, std::min<int64_t>(to_int(a[0], "indent", line), 100000)), ' ');
             return same_kind(v, indent_text(v.str(), ind, a[1].truthy(), a[2].truthy()));
         }},
        {"int",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"default", "base"}, "int", line);
             if (v.is_undefined()) in.undefined_error(v, line);  // int(Undefined) raises in Jinja2
             Value def = given(a[0]) ? a[0] : Value::integer(0);
             int base = given(a[1]) ? (int)to_int(a[1], "int", line) : 10;
             if (v.is_int()) return Value::integer(v.as_int());
             if (v.t == Value::T::Float) {
                 if (!std::isfinite(v.f)) fail(line, "cannot convert float infinity or NaN to integer");
                 if (std::fabs(v.f) >= 9.2e18) fail(line, "integer overflow");
                 return Value::integer((int64_t)std::trunc(v.f));
             }
             if (v.is_string()) {
                 int64_t r;
                 if (parse_int(v.s, base, r)) return Value::integer(r);
                 double d;
                 if (parse_float(v.s, d) && std::isfinite(d) && std::fabs(d) < 9.2e18)
                     return Value::integer((int64_t)std::trunc(d));
             }
             return def;
         }},
        {"items",
         [](Interp&, Value& v, Args&, int line) -> Value {
             if (v.is_undefined()) return Value::lazy_list({});
             if (!v.is_dict() || v.as_dict().is_namespace) fail(line, "items: can only get item pairs from a mapping");
             std::vector<Value> out;
             for (auto& kv : v.as_dict().items) out.push_back(Value::list({kv.first, kv.second}, true));
             return Value::lazy_list(std::move(out));
         }},
        {"join",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"d", "attribute"}, "join", line);
             std::string sep = given(a[0]) ? a[0].str() : "";
             std::string out;
             bool first = true;
             for (auto& x : to_items(in, v, line)) {
                 if (!first) out += sep;
                 first = false;
                 out += (given(a[1]) ? attr_path(in, x, a[1].str(), line) : x).str();
                 in.check_size(out.size(), line);
             }
             return Value::string(std::move(out));
         }},
        {"last",
         [](Interp& in, Value& v, Args&, int line) -> Value {
             if (v.is_string()) {
                 auto cps = utf8_decode(v.s);
                 if (cps.empty()) return Value::undefined("No last item, sequence was empty.");
                 return Value::string(utf8_encode(cps, cps.size() - 1, cps.size()));
             }
             if (v.is_list() && v.as_list().lazy) fail(line, "'generator' object is not reversible");
             auto items = to_items(in, v, line);
             return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
         }},
        {"length",
         [](Interp&, Value& v, Args&, int line) -> Value {
             switch (v.t) {
                 case Value::T::Undefined: return Value::integer(0);
                 case Value::T::String: return Value::integer((int64_t)utf8_length(v.s));
                 case Value::T::List:
                     if (v.as_list().lazy) break;
                     return Value::integer((int64_t)v.as_list().items.size());
                 case Value::T::Dict:
                     if (v.as_dict().is_namespace) break;
                     return Value::integer((int64_t)v.as_dict().items.size());
                 case Value::T::Loop: return Value::integer((int64_t)v.as_loop().items->size());
                 default: break;
             }
             fail(line, "object of type '" + v.type_name() + "' has no len()");
         }},
        {"list",
         [](Interp& in, Value& v, Args&, int line) -> Value { return Value::list(to_items(in, v, line)); }},
        {"lower", [](Interp&, Value& v, Args&, int) -> Value { return same_kind(v, py_case(v.str(), 0)); }},
        {"map",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             std::vector<Value> out;
             if (!v.truthy()) return Value::lazy_list({});  // Jinja2: `if value:` before iterating
             if (args.pos.empty()) {
                 Value attr, def;
                 for (auto& kv : args.kw) {
                     if (kv.first == "attribute") attr = kv.second;
                     else if (kv.first == "default") def = kv.second;
                     else fail(line, "map: unexpected keyword argument '" + kv.first + "'");
                 }
                 if (!attr.is_string()) fail(line, "map: expected a filter name or attribute=");
                 for (auto& x : to_items(in, v, line)) {
                     Value r = attr_path(in, x, attr.s, line);
                     if (r.is_undefined() && given(def) && !def.is_none()) r = def;
                     out.push_back(std::move(r));
                 }
                 return Value::lazy_list(std::move(out));
             }
             if (!args.pos[0].is_string()) fail(line, "map: filter name must be a string");
             std::string name = args.pos[0].s;
             if (!in.has_filter(name)) fail(line, "unsupported filter '" + name + "'");
             for (auto& x : to_items(in, v, line)) {
                 Args fa;
                 fa.pos.assign(args.pos.begin() + 1, args.pos.end());
                 fa.kw = args.kw;
                 out.push_back(in.apply_filter(name, x, fa, line));
             }
             return Value::lazy_list(std::move(out));
         }},
        {"max", [](Interp& in, Value& v, Args& args, int line) -> Value { return minmax(in, v, args, line, true); }},
        {"min", [](Interp& in, Value& v, Args& args, int line) -> Value { return minmax(in, v, args, line, false); }},
        {"reject",
         [](Interp& in, Value& v, Args& args, int line) -> Value { return select_impl(in, v, args, line, false, false); }},
        {"rejectattr",
         [](Interp& in, Value& v, Args& args, int line) -> Value { return select_impl(in, v, args, line, true, false); }},
        {"replace",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"old", "new", "count"}, "replace", line);
             int64_t count = given(a[2]) && !a[2].is_none() ? to_int(a[2], "replace", line) : -1;
             std::string r = py_replace(v.str(), a[0].str(), a[1].str(), count);
             in.check_size(r.size(), line);
             return Value::string(std::move(r));
         }},
        {"reverse",
         [](Interp& in, Value& v, Args&, int line) -> Value {
             if (v.is_string()) {
                 auto cps = utf8_decode(v.s);
                 std::reverse(cps.begin(), cps.end());
                 return Value::string(utf8_encode(cps, 0, cps.size()));
             }
             auto items = to_items(in, v, line);
             std::reverse(items.begin(), items.end());
             return Value::lazy_list(std::move(items));
         }},
        {"round",
         [](Interp&, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"precision", "method"}, "round", line);
             return do_round(v, given(a[0]) ? to_int(a[0], "round", line) : 0, given(a[1]) ? a[1].str() : "common", line);
         }},
        {"safe", [](Interp&, Value& v, Args&, int) -> Value { return Value::markup_string(v.str()); }},
        {"select",
         [](Interp& in, Value& v, Args& args, int line) -> Value { return select_impl(in, v, args, line, false, true); }},
        {"selectattr",
         [](Interp& in, Value& v, Args& args, int line) -> Value { return select_impl(in, v, args, line, true, true); }},
        {"sort",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"reverse", "case_sensitive", "attribute"}, "sort", line);
             bool cs = a[1].truthy();
             std::vector<std::string> attrs;
             if (given(a[2]) && !a[2].is_none()) {
                 std::string s = a[2].str();
                 size_t start = 0;
                 while (true) {
                     size_t c = s.find(',', start);
                     attrs.push_back(s.substr(start, c == std::string::npos ? std::string::npos : c - start));
                     if (c == std::string::npos) break;
                     start = c + 1;
                 }
             }
             auto items = to_items(in, v, line);
             std::vector<std::pair<Value, Value>> keyed;
             for (auto& x : items) {
                 Value k;
                 if (attrs.empty()) k = sort_key(x, cs);
                 else if (attrs.size() == 1) k = sort_key(attr_path(in, x, attrs[0], line), cs);
                 else {
                     std::vector<Value> parts;
                     for (auto& at : attrs) parts.push_back(sort_key(attr_path(in, x, at, line), cs));
                     k = Value::list(std::move(parts));
                 }
                 keyed.emplace_back(std::move(k), x);
             }
             bool rev = a[0].truthy();
             std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
                 int c = compare_values(x.first, y.first, line);
                 return rev ? c > 0 : c < 0;
             });
             std::vector<Value> out;
             for (auto& kv : keyed) out.push_back(std::move(kv.second));
             return Value::list(std::move(out));
         }},
        {"string", [](Interp&, Value& v, Args&, int) -> Value { return v.is_string() ? v : Value::string(v.str()); }},
        {"sum",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"attribute", "start"}, "sum", line);
             Value total = given(a[1]) ? a[1] : Value::integer(0);
             for (auto& x : to_items(in, v, line)) {
                 Value item = given(a[0]) && !a[0].is_none() ? attr_path(in, x, a[0].str(), line) : x;
                 if (!total.is_number() || !item.is_number())
                     fail(line, "sum: unsupported operand type(s) for +: '" + total.type_name() + "' and '" + item.type_name() + "'");
                 if (total.t == Value::T::Float || item.t == Value::T::Float) total = Value::number(total.as_float() + item.as_float());
                 else {
                     int64_t r;
                     if (__builtin_add_overflow(total.as_int(), item.as_int(), &r)) fail(line, "integer overflow");
                     total = Value::integer(r);
                 }
             }
             return total;
         }},
        {"title",
         [](Interp&, Value& v, Args&, int) -> Value {
             // Jinja2: split on runs of [-\s({[<] and capitalize each piece.
             std::vector<uint32_t> cps = utf8_decode(v.str());
             std::string out;
             bool start = true;
             for (uint32_t c : cps) {
                 bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c);
                 if (sep) {
                     utf8_append(out, c);
                     start = true;
                 } else {
                     utf8_append(out, start ? py_upper(c) : py_lower(c));
                     start = false;
                 }
             }
             return same_kind(v, std::move(out));
         }},
        {"tojson",
         [](Interp&, Value& v, Args& args, int line) -> Value {
             // Hugging Face's tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
             // sort_keys=False).
             auto a = bind_args(args, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson", line);
             JsonStyle st;
             st.ensure_ascii = a[0].truthy();
             st.sort_keys = a[3].truthy();
             if (a[1].is_string()) {
                 st.has_indent = true;
                 st.indent = a[1].s;
             } else if (a[1].is_int()) {
                 st.has_indent = true;
                 st.indent = std::string((size_t)std::max<int64_t>(0, std::min<int64_t>(a[1].as_int(), 10000)), ' ');
             } else if (given(a[1]) && !a[1].is_none()) {
                 fail(line, "tojson: indent must be an integer or a string");
             }
             if (st.has_indent) st.item_sep = ",";
             if (given(a[2]) && !a[2].is_none()) {
                 if (!a[2].is_list() || a[2].as_list().items.size() != 2 || !a[2].as_list().items[0].is_string() ||
                     !a[2].as_list().items[1].is_string())
                     fail(line, "tojson: separators must be a pair of strings");
                 st.item_sep = a[2].as_list().items[0].s;
                 st.key_sep = a[2].as_list().items[1].s;
             }
             if (v.is_undefined()) fail(line, "tojson: object of type Undefined is not JSON serializable" + (v.s.empty() ? std::string() : " (" + v.s + ")"));
             return Value::string(to_json(v, st, line));
         }},
        {"trim",
         [](Interp&, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"chars"}, "trim", line);
             if (given(a[0]) && !a[0].is_none() && !a[0].is_string()) fail(line, "trim: chars must be a string");
             return same_kind(v, py_strip(v.str(), a[0], true, true));
         }},
        {"truncate",
         [](Interp&, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"length", "killwords", "end", "leeway"}, "truncate", line);
             if (!v.is_string()) {  // Jinja2 only measures len() of non-strings unless it must cut them
                 int64_t n = v.is_undefined() ? 0
                             : v.is_list()    ? (int64_t)v.as_list().items.size()
                             : v.is_dict()    ? (int64_t)v.as_dict().items.size()
                                              : -1;
                 if (n < 0) fail(line, "truncate: object of type '" + v.type_name() + "' has no len()");
                 if (n <= (given(a[0]) ? to_int(a[0], "truncate", line) : 255) +
                              (given(a[3]) && !a[3].is_none() ? to_int(a[3], "truncate", line) : 5))
                     return v;
                 fail(line, "truncate: expected a string, got " + v.type_name());
             }
             int64_t length = given(a[0]) ? to_int(a[0], "truncate", line) : 255;
             std::string end = given(a[2]) ? a[2].str() : "...";
             int64_t leeway = given(a[3]) && !a[3].is_none() ? to_int(a[3], "truncate", line) : 5;
             std::string s = v.str();
             auto cps = utf8_decode(s);
             int64_t endlen = (int64_t)utf8_length(end);
             if (length < endlen) fail(line, "truncate: expected length >= " + std::to_string(endlen));
             if (leeway < 0) fail(line, "truncate: expected leeway >= 0");
             if ((int64_t)cps.size() <= length + leeway) return Value::string(s);
             std::string head = utf8_encode(cps, 0, (size_t)(length - endlen));
             if (a[1].truthy()) return Value::string(head + end);
             size_t sp = head.rfind(' ');
             if (sp != std::string::npos) head.resize(sp);
             return Value::string(head + end);
         }},
        {"unique",
         [](Interp& in, Value& v, Args& args, int line) -> Value {
             auto a = bind_args(args, {"case_sensitive", "attribute"}, "unique", line);
             bool cs = a[0].truthy();
             std::vector<Value> out, seen;
             for (auto& x : to_items(in, v, line)) {
                 Value k = sort_key(given(a[1]) && !a[1].is_none() ? attr_path(in, x, a[1].str(), line) : x, cs);
                 bool dup = false;
                 for (auto& s : seen)
                     if (values_equal(s, k)) {
                         dup = true;
                         break;
                     }
                 if (dup) continue;
                 seen.push_back(std::move(k));
                 out.push_back(x);
             }
             return Value::lazy_list(std::move(out));
         }},
        {"upper", [](Interp&, Value& v, Args&, int) -> Value { return same_kind(v, py_case(v.str(), 1)); }},
        {"wordcount",
         [](Interp&, Value& v, Args&, int) -> Value {
             int64_t n = 0;
             bool in_word = false;
             for (uint32_t c : utf8_decode(v.str())) {
                 bool w = py_isalnum(c) || c == '_';
                 if (w && !in_word) ++n;
                 in_word = w;
             }
             return Value::integer(n);
         }},
    };
    return table;
}

const std::unordered_map<std::string, std::string>& filter_aliases() {
    static const std::unordered_map<std::string, std::string> a = {
        {"d", "default"}, {"e", "escape"}, {"forceescape", "escape"}, {"count", "length"}};
    return a;
}

bool cmp_test(Interp& in, const Value& v, Args& args, int line, Op op, const char* name) {
    auto a = bind_args(args, {"other"}, name, line);
    switch (op) {
        case Op::Eq: return values_equal(v, a[0]);
        case Op::Ne: return !values_equal(v, a[0]);
        default: break;
    }
    if (v.is_undefined()) in.undefined_error(v, line);
    int c = compare_values(v, a[0], line);
    switch (op) {
        case Op::Lt: return c < 0;
        case Op::Le: return c <= 0;
        case Op::Gt: return c > 0;
        default: return c >= 0;
    }
}

bool mod_is(Interp& in, const Value& v, int64_t m, int64_t want, int line) {
    if (v.is_undefined()) in.undefined_error(v, line);
    if (v.t == Value::T::Float) {
        double r = std::fmod(v.f, (double)m);
        if (r < 0) r += (double)m;
        return r == (double)want;
    }
    if (!v.is_int()) fail(line, "not all arguments converted during string formatting");
    int64_t r = v.as_int() % m;
    if (r < 0) r += m;
    return r == want;
}

const std::unordered_map<std::string, TestFn>& test_table() {
    static const std::unordered_map<std::string, TestFn> table = {
        {"boolean", [](Interp&, const Value& v, Args&, int) { return v.t == Value::T::Bool; }},
        {"callable",
         [](Interp&, const Value& v, Args&, int) {
             return v.t == Value::T::Func || v.t == Value::T::Loop || v.is_undefined();  // Undefined has __call__
         }},
        {"defined", [](Interp&, const Value& v, Args&, int) { return !v.is_undefined(); }},
        {"undefined", [](Interp&, const Value& v, Args&, int) { return v.is_undefined(); }},
        {"divisibleby",
         [](Interp& in, const Value& v, Args& args, int line) {
             auto a = bind_args(args, {"num"}, "divisibleby", line);
             if (a[0].is_int() && a[0].as_int() == 0) fail(line, "integer division or modulo by zero");
             if (v.is_int() && a[0].is_int()) {
                 int64_t m = a[0].as_int();
                 return m == -1 || v.as_int() % m == 0;
             }
             if (!v.is_number() || !a[0].is_number()) {
                 if (v.is_undefined()) in.undefined_error(v, line);
                 fail(line, "divisibleby: expected numbers");
             }
             return std::fmod(v.as_float(), a[0].as_float()) == 0;
         }},
        {"eq", [](Interp& in, const Value& v, Args& a, int line) { return cmp_test(in, v, a, line, Op::Eq, "eq"); }},
        {"ne", [](Interp& in, const Value& v, Args& a, int line) { return cmp_test(in, v, a, line, Op::Ne, "ne"); }},
        {"lt", [](Interp& in, const Value& v, Args& a, int line) { return cmp_test(in, v, a, line, Op::Lt, "lt"); }},
        {"le", [](Interp& in, const Value& v, Args& a, int line) { return cmp_test(in, v, a, line, Op::Le, "le"); }},
        {"gt", [](Interp& in, const Value& v, Args& a, int line) { return cmp_test(in, v, a, line, Op::Gt, "gt"); }},
        {"ge", [](Interp& in, const Value& v, Args& a, int line) { return cmp_test(in, v, a, line, Op::Ge, "ge"); }},
        {"escaped", [](Interp&, const Value&, Args&, int) { return false; }},
        {"even", [](Interp& in, const Value& v, Args&, int line) { return mod_is(in, v, 2, 0, line); }},
        {"odd", [](Interp& in, const Value& v, Args&, int line) { return mod_is(in, v, 2, 1, line); }},
        {"false", [](Interp&, const Value& v, Args&, int) { return v.t == Value::T::Bool && !v.b; }},
        {"true", [](Interp&, const Value& v, Args&, int) { return v.t == Value::T::Bool && v.b; }},
        {"filter", [](Interp& in, const Value& v, Args&, int) { return v.is_string() && in.has_filter(v.s); }},
        {"test", [](Interp& in, const Value& v, Args&, int) { return v.is_string() && in.has_test(v.s); }},
        {"float", [](Interp&, const Value& v, Args&, int) { return v.t == Value::T::Float; }},
        {"integer", [](Interp&, const Value& v, Args&, int) { return v.t == Value::T::Int; }},
        {"number", [](Interp&, const Value& v, Args&, int) { return v.is_number(); }},
        {"in",
         [](Interp&, const Value& v, Args& args, int line) {
             auto a = bind_args(args, {"seq"}, "in", line);
             return contains(a[0], v, line);
         }},
        {"iterable",
         [](Interp&, const Value& v, Args&, int) {
             return v.is_undefined() || v.is_string() || v.is_list() || (v.is_dict() && !v.as_dict().is_namespace);
         }},
        {"sequence",
         [](Interp&, const Value& v, Args&, int) {
             return v.is_undefined() || v.is_string() || (v.is_list() && !v.as_list().lazy) ||
                    (v.is_dict() && !v.as_dict().is_namespace);
         }},
        {"mapping", [](Interp&, const Value& v, Args&, int) { return v.is_dict() && !v.as_dict().is_namespace; }},
        {"none", [](Interp&, const Value& v, Args&, int) { return v.is_none(); }},
        {"string", [](Interp&, const Value& v, Args&, int) { return v.is_string(); }},
        {"lower",
         [](Interp&, const Value& v, Args&, int) {
             std::string s = v.str();
             return py_case(s, 0) == s && py_case(s, 1) != s;
         }},
        {"upper",
         [](Interp&, const Value& v, Args&, int) {
             std::string s = v.str();
             return py_case(s, 1) == s && py_case(s, 0) != s;
         }},
        {"sameas",
         [](Interp&, const Value& v, Args& args, int line) {
             auto a = bind_args(args, {"other"}, "sameas", line);
             const Value& o = a[0];
             if (v.t != o.t) return false;
             switch (v.t) {
                 case Value::T::None:
                 case Value::T::Undefined: return true;
                 case Value::T::Bool: return v.b == o.b;
                 case Value::T::Int: return v.i == o.i;
                 case Value::T::Float: return v.f == o.f;
                 case Value::T::String: return v.s == o.s;
                 default: return v.o == o.o;
             }
         }},
    };
    return table;
}

const std::unordered_map<std::string, std::string>& test_aliases() {
    static const std::unordered_map<std::string, std::string> a = {
        {"equalto", "eq"}, {"==", "eq"}, {"!=", "ne"}, {"lessthan", "lt"}, {"<", "lt"}, {"<=", "le"},
        {"greaterthan", "gt"}, {">", "gt"}, {">=", "ge"}};
    return a;
}

const std::string& canonical(const std::unordered_map<std::string, std::string>& aliases, const std::string& name) {
    auto it = aliases.find(name);
    return it == aliases.end() ? name : it->second;
}

}  // namespace

bool Interp::has_filter(const std::string& name) const {
    return filter_table().count(canonical(filter_aliases(), name)) > 0;
}

bool Interp::has_test(const std::string& name) const {
    return test_table().count(canonical(test_aliases(), name)) > 0;
}

Value Interp::apply_filter(const std::string& name, Value input, Args& args, int line) {
    const auto& table = filter_table();
    auto it = table.find(canonical(filter_aliases(), name));
    if (it == table.end()) fail(line, "unsupported filter '" + name + "'");
    return it->second(*this, input, args, line);
}

bool Interp::apply_test(const std::string& name, const Value& v, Args& args, int line) {
    const auto& table = test_table();
    auto it = table.find(canonical(test_aliases(), name));
    if (it == table.end()) fail(line, "unsupported test '" + name + "'");
    return it->second(*this, v, args, line);
}

// ---------------------------------------------------------------------------------------------
// Globals

void install_globals(Frame& g) {
    g.set("range", Value::func("range", [](Interp&, Args& args, int line) -> Value {
              if (!args.kw.empty()) fail(line, "range() takes no keyword arguments");
              if (args.pos.empty() || args.pos.size() > 3) fail(line, "range expected 1 to 3 arguments");
              int64_t start = 0, stop, step = 1;
              for (auto& v : args.pos)
                  if (!v.is_int()) fail(line, "range: '" + v.type_name() + "' object cannot be interpreted as an integer");
              if (args.pos.size() == 1) stop = args.pos[0].as_int();
              else {
                  start = args.pos[0].as_int();
                  stop = args.pos[1].as_int();
                  if (args.pos.size() == 3) step = args.pos[2].as_int();
              }
              if (step == 0) fail(line, "range() arg 3 must not be zero");
              // The same limit as Jinja2's sandbox (MAX_RANGE).
              double count = std::ceil(((double)stop - (double)start) / (double)step);
              if (count > 100000) fail(line, "range too big: the limit is 100000 items");
              std::vector<Value> out;
              for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) out.push_back(Value::integer(k));
              return Value::list(std::move(out));
          }));
    auto make_dict = [](Args& args, int line, bool ns) -> Value {
        Value d = Value::dict();
        d.as_dict().is_namespace = ns;
        for (auto& p : args.pos) {
            if (p.is_dict()) {
                for (auto& kv : p.as_dict().items) d.as_dict().set(kv.first, kv.second);
            } else if (p.is_list()) {
                for (auto& pair : p.as_list().items) {
                    if (!pair.is_list() || pair.as_list().items.size() != 2)
                        fail(line, "dictionary update sequence element has wrong length");
                    d.as_dict().set(pair.as_list().items[0], pair.as_list().items[1]);
                }
            } else {
                fail(line, "'" + p.type_name() + "' object is not iterable");
            }
        }
        for (auto& kv : args.kw) d.as_dict().set(std::string_view(kv.first), kv.second);
        return d;
    };
    g.set("namespace", Value::func("namespace", [make_dict](Interp&, Args& args, int line) { return make_dict(args, line, true); }));
    g.set("dict", Value::func("dict", [make_dict](Interp&, Args& args, int line) { return make_dict(args, line, false); }));
    g.set("raise_exception", Value::func("raise_exception", [](Interp&, Args& args, int line) -> Value {
              std::string msg = args.pos.empty() ? std::string("raise_exception() called") : args.pos[0].str();
              fail(line, msg);
          }));
    g.set("strftime_now", Value::func("strftime_now", [](Interp&, Args& args, int line) -> Value {
              if (args.pos.empty() || !args.pos[0].is_string()) fail(line, "strftime_now expects a format string");
              time_t now = time(nullptr);
              struct tm tmv;
              localtime_r(&now, &tmv);
              std::string fmt = args.pos[0].s;
              if (fmt.empty()) return Value::string("");
              std::vector<char> buf(256);
              for (int tries = 0; tries < 8; ++tries) {
                  size_t n = strftime(buf.data(), buf.size(), fmt.c_str(), &tmv);
                  if (n > 0) return Value::string(std::string(buf.data(), n));
                  buf.resize(buf.size() * 4);
              }
              return Value::string("");
          }));
    g.set("joiner", Value::func("joiner", [](Interp&, Args& args, int) -> Value {
              std::string sep = args.pos.empty() ? ", " : args.pos[0].str();
              auto used = std::make_shared<bool>(false);
              return Value::func("joiner", [sep, used](Interp&, Args&, int) -> Value {
                  if (!*used) {
                      *used = true;
                      return Value::string("");
                  }
                  return Value::string(sep);
              });
          }));
}

}  // namespace yiti::jinja::detail
