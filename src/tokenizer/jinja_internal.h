// Internals of the Jinja interpreter (see jinja.h): values, tokens, syntax tree, interpreter.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "tokenizer/jinja.h"

namespace yiti::jinja::detail {

// Throws yiti::Error("jinja: line N: msg") (or "jinja: msg" when line <= 0).
[[noreturn]] void fail(int line, const std::string& msg);

// ---------------------------------------------------------------------------------------------
// Values

struct Obj {
    virtual ~Obj() = default;
    virtual void release() {}  // drops all references held (see ObjRegistry)
};

// Containers can form reference cycles (xs.append(xs), ns.x = ns, ...) that shared_ptr never
// frees. Every object created during a render is registered here, and when the render ends all
// that are still alive are released, which breaks any cycle.
struct ObjRegistry {
    std::vector<std::weak_ptr<Obj>> objs;
    size_t prune_at = 4096;
    void add(const std::shared_ptr<Obj>& o);
    void release_all();
};
// The registry of the render running on this thread (null outside renders).
ObjRegistry*& current_registry();

template <class T>
std::shared_ptr<T> new_obj() {
    std::shared_ptr<T> p(new T);  // not make_shared: a weak_ptr must not pin the object's memory
    if (ObjRegistry* r = current_registry()) r->add(p);
    return p;
}
struct ListObj;
struct DictObj;
struct FuncObj;
struct LoopObj;
class Interp;

struct Value {
    enum class T : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Func, Loop };
    T t = T::Undefined;
    bool markup = false;  // String: a Markup ("safe") string; `+` HTML-escapes a plain operand
    union {
        bool b;
        int64_t i;
        double f;
    };
    std::string s;           // String; for Undefined: the hint used in error messages
    std::shared_ptr<Obj> o;  // List, Dict, Func, Loop

    Value() : i(0) {}
    static Value undefined(std::string hint = {}) {
        Value v;
        v.s = std::move(hint);
        return v;
    }
    static Value none() {
        Value v;
        v.t = T::None;
        return v;
    }
    static Value boolean(bool x) {
        Value v;
        v.t = T::Bool;
        v.b = x;
        return v;
    }
    static Value integer(int64_t x) {
        Value v;
        v.t = T::Int;
        v.i = x;
        return v;
    }
    static Value number(double x) {
        Value v;
        v.t = T::Float;
        v.f = x;
        return v;
    }
    static Value string(std::string x) {
        Value v;
        v.t = T::String;
        v.s = std::move(x);
        return v;
    }
    static Value markup_string(std::string x) {
        Value v = string(std::move(x));
        v.markup = true;
        return v;
    }
    static Value list(std::vector<Value> items = {}, bool tuple = false);
    // The result of filters that return generators in Jinja2 (map, select, items, ...): iterable,
    // always true, but without len() and not JSON serializable.
    static Value lazy_list(std::vector<Value> items);
    static Value dict();
    static Value func(std::string name, std::function<Value(Interp&, struct Args&, int line)> fn);

    bool is_undefined() const { return t == T::Undefined; }
    bool is_none() const { return t == T::None; }
    bool is_string() const { return t == T::String; }
    bool is_int() const { return t == T::Int || t == T::Bool; }  // Python: bool is an int
    bool is_number() const { return t == T::Int || t == T::Bool || t == T::Float; }
    bool is_list() const { return t == T::List; }
    bool is_dict() const { return t == T::Dict; }

    ListObj& as_list() const;
    DictObj& as_dict() const;
    FuncObj& as_func() const;
    LoopObj& as_loop() const;
    int64_t as_int() const { return t == T::Bool ? (b ? 1 : 0) : i; }
    double as_float() const { return t == T::Float ? f : (double)as_int(); }

    bool truthy() const;
    std::string str() const;   // Python str()
    std::string repr() const;  // Python repr()
    std::string type_name() const;
};

struct ListObj : Obj {
    std::vector<Value> items;
    bool tuple = false;
    bool lazy = false;  // a Jinja2 generator (see Value::lazy_list)
    void release() override { std::vector<Value>().swap(items); }
};

struct DictObj : Obj {
    std::vector<std::pair<Value, Value>> items;  // insertion ordered
    bool is_namespace = false;
    Value* find(const Value& key);
    Value* find(std::string_view key);
    void set(const Value& key, Value v);
    void set(std::string_view key, Value v) { set(Value::string(std::string(key)), std::move(v)); }
    bool erase(const Value& key);
    void release() override { std::vector<std::pair<Value, Value>>().swap(items); }
};

struct Args {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
};

using NativeFn = std::function<Value(Interp&, Args&, int line)>;

struct FuncObj : Obj {
    std::string name;
    NativeFn fn;
    void release() override { NativeFn().swap(fn); }
};

struct LoopObj : Obj {
    std::shared_ptr<std::vector<Value>> items;
    size_t index0 = 0;
    int depth0 = 0;
    Value recurse;  // callable for `loop(...)` in recursive loops (undefined otherwise)
    std::shared_ptr<Value> last_changed;
    void release() override {
        items.reset();
        recurse = Value();
        last_changed.reset();
    }
};

// Python semantics helpers.
bool values_equal(const Value& a, const Value& b);
int compare_values(const Value& a, const Value& b, int line);  // <0, 0, >0; throws on bad types
std::string format_float(double x);                            // Python repr(float)
Value value_from_json(const nlohmann::ordered_json& j);
struct JsonStyle {
    std::string indent;  // used when has_indent
    bool has_indent = false;
    std::string item_sep = ", ";
    std::string key_sep = ": ";
    bool sort_keys = false;
    bool ensure_ascii = false;
};
std::string to_json(const Value& v, const JsonStyle& style, int line);
void append_json_string(std::string& out, std::string_view s, bool ensure_ascii);

// UTF-8 helpers: strings are UTF-8, but Python indexes by code point.
std::vector<uint32_t> utf8_decode(std::string_view s);
void utf8_append(std::string& out, uint32_t cp);
std::string utf8_encode(const std::vector<uint32_t>& cps, size_t from, size_t to);
size_t utf8_length(std::string_view s);
bool py_isspace(uint32_t cp);
uint32_t py_upper(uint32_t cp);
uint32_t py_lower(uint32_t cp);
bool py_isalnum(uint32_t cp);
bool py_isalpha(uint32_t cp);
bool py_isdigit(uint32_t cp);

// ---------------------------------------------------------------------------------------------
// Tokens

struct Token {
    enum class T : uint8_t { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };
    T t;
    int line;
    std::string s;  // Data text, Name, String value, Op text
    int64_t i = 0;
    double f = 0;
};

std::vector<Token> tokenize(std::string_view source, const Options& opt);

// ---------------------------------------------------------------------------------------------
// Syntax tree

enum class Op : uint8_t {
    Add, Sub, Mul, Div, FloorDiv, Mod, Pow, Concat,
    Eq, Ne, Lt, Le, Gt, Ge, In, NotIn,
    And, Or, Not, Neg, Pos,
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
    enum class K : uint8_t {
        Const, Name, ListLit, TupleLit, DictLit, Attr, Item, Slice, Call, Filter, Test,
        Unary, Binary, Compare, Cond, Concat,
    };
    K k;
    int line;
    Op op = Op::Add;
    bool negated = false;  // Test: `is not`
    int depth = 1;         // nesting depth of this subtree (bounded by the parser)
    Value val;             // Const
    std::string name;      // Name, Attr, Filter, Test
    std::vector<ExprPtr> a;
    std::vector<std::pair<std::string, ExprPtr>> kw;
    std::vector<Op> ops;  // Compare
    Expr(K k_, int line_) : k(k_), line(line_) {}
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
    enum class K : uint8_t {
        Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, Break, Continue, Do,
        With, Scope,
    };
    K k;
    int line;
    std::string text;                             // Text; Macro name
    ExprPtr expr;                                 // Output, Set value, For iterable, Do, CallBlock call
    ExprPtr target;                               // Set / SetBlock / For target
    ExprPtr cond;                                 // For: filter condition
    std::vector<std::pair<ExprPtr, Body>> branches;  // If: (condition, body); else has null cond
    Body body, else_body;
    std::vector<std::pair<std::string, ExprPtr>> params;  // Macro / caller params, With bindings
    std::vector<ExprPtr> filters;  // SetBlock / FilterBlock: Filter nodes without input
    bool recursive = false;
    Stmt(K k_, int line_) : k(k_), line(line_) {}
};

struct Program {
    Body body;
    Options opt;
};

std::shared_ptr<Program> parse_program(std::string_view source, const Options& opt);

// ---------------------------------------------------------------------------------------------
// Interpreter

struct Frame {
    std::vector<std::pair<std::string, Value>> vars;
    std::shared_ptr<Frame> parent;
    Value* lookup(std::string_view name);
    Value* find_local(std::string_view name);
    void set(std::string_view name, Value v);
};
using FramePtr = std::shared_ptr<Frame>;

enum class Flow : uint8_t { Normal, Break, Continue };

class Interp {
public:
    explicit Interp(const Options& opt);
    const Options& opt() const { return opt_; }

    Value eval(const Expr& e, const FramePtr& f);
    Flow exec(const Body& body, const FramePtr& f, std::string& out);
    Value call(const Value& callee, Args& args, int line);
    // Attribute access (obj.name) and subscript (obj[key]) with Jinja2 semantics.
    Value getattr(const Value& obj, const std::string& name, int line);
    Value getitem(const Value& obj, const Value& key, int line);
    // Iteration as a list; undefined iterates as empty, non-iterables throw.
    std::vector<Value> iterate(const Value& v, int line);

    void check_size(size_t n, int line) const;
    // Fails cleanly before the thread's stack runs out (deep recursion in a template).
    void check_stack(int line) const {
        if (stack_limit_ && (uintptr_t)__builtin_frame_address(0) < stack_limit_)
            fail(line, "template recursion too deep for the thread's stack");
    }
    void count_iteration(int line);
    void enter_call(int line);
    void leave_call() { --call_depth_; }
    // An error at `line` naming an undefined value (Jinja2 UndefinedError wording).
    [[noreturn]] void undefined_error(const Value& v, int line) const;

    Value apply_filter(const std::string& name, Value input, Args& args, int line);
    bool apply_test(const std::string& name, const Value& v, Args& args, int line);
    bool has_filter(const std::string& name) const;
    bool has_test(const std::string& name) const;

private:
    Flow exec_stmt(const Stmt& s, const FramePtr& f, std::string& out);
    Flow exec_for(const Stmt& s, const FramePtr& f, std::string& out, const Value& iterable, int depth0);
    void assign(const Expr& target, Value v, const FramePtr& f);
    Value eval_filter(const Expr& e, Value input, const FramePtr& f);
    Value make_macro(const Stmt& s, const FramePtr& f);
    void eval_args(const Expr& e, size_t first, const FramePtr& f, Args& args);
    Value binary(Op op, const Value& a, const Value& b, int line);

    Options opt_;
    uintptr_t stack_limit_ = 0;  // lowest stack address we let evaluation reach (0: unknown)
    int call_depth_ = 0;
    size_t iterations_ = 0;
};

// Builtins (jinja_builtins.cpp).
// Python str methods on UTF-8 strings (jinja_methods.cpp).
std::string py_strip(std::string_view s, const Value& chars, bool left, bool right);
std::vector<std::string> py_split(std::string_view s, const Value& sep, int64_t maxsplit, bool from_right, int line);
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);
std::string py_replace(std::string_view s, std::string_view old, std::string_view neu, int64_t count);
std::string py_case(std::string_view s, int mode);  // 0 lower, 1 upper, 2 title (str.title), 3 capitalize
std::string pad_center(const std::string& s, int64_t width, const std::string& fill);
std::string format_spec(Interp& in, const Value& v, const std::string& spec, int line);  // format(v, spec)
std::string html_escape(const std::string& s);
std::string percent_format(Interp& in, const std::string& fmt, const Value& args, int line);  // "%s" % x
bool contains(const Value& container, const Value& item, int line);                         // `in`
Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step, int line);
Value builtin_method(Interp& in, const Value& obj, const std::string& name);  // undefined if none
void install_globals(Frame& globals);
// Argument binding: values for the named parameters (after the positional `skip` first ones),
// positionally or by keyword; missing ones are undefined. Throws on unknown keywords.
std::vector<Value> bind_args(const Args& args, std::initializer_list<const char*> names, const char* what,
                             int line);

}  // namespace yiti::jinja::detail
