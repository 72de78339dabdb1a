// Jinja interpreter: evaluates expressions and executes statements with Jinja2's scoping rules
// (a fresh scope per loop iteration, macros see their defining scope, `if` has no scope).
#include <algorithm>
#include <cmath>

#include <pthread.h>

#include "tokenizer/jinja_internal.h"

namespace yiti::jinja::detail {

namespace {

std::string object_desc(const Value& obj) {
    if (obj.is_none()) return "'None'";
    return "'" + obj.type_name() + " object'";
}

Value missing_attr(const Value& obj, const std::string& name) {
    return Value::undefined(object_desc(obj) + " has no attribute '" + name + "'");
}

struct CallDepth {
    Interp& in;
    CallDepth(Interp& i, int line) : in(i) { in.enter_call(line); }
    ~CallDepth() { in.leave_call(); }
};

int64_t checked(bool overflow, int64_t v, int line) {
    if (overflow) fail(line, "integer overflow");
    return v;
}

}  // namespace

namespace {

// The lowest address of this thread's stack that evaluation may use (0 when unknown). Computed
// once per thread: pthread_getattr_np reads /proc for the main thread.
uintptr_t thread_stack_floor() {
    static thread_local uintptr_t floor = [] {
        uintptr_t r = 0;
#if defined(__GLIBC__)
        pthread_attr_t attr;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            void* addr = nullptr;
            size_t size = 0;
            if (pthread_attr_getstack(&attr, &addr, &size) == 0 && addr && size) {
                // Stacks grow down to addr; keep a margin for builtins and the error path.
                size_t margin = std::min<size_t>(size / 4, 256u << 10);
                r = (uintptr_t)addr + margin;
            }
            pthread_attr_destroy(&attr);
        }
#endif
        return r;
    }();
    return floor;
}

}  // namespace

Interp::Interp(const Options& opt) : opt_(opt) {
    uintptr_t floor = thread_stack_floor();
    if (floor && (uintptr_t)__builtin_frame_address(0) > floor) stack_limit_ = floor;
}

void Interp::check_size(size_t n, int line) const {
    if (n > opt_.max_output_bytes)
        fail(line, "output exceeds the limit of " + std::to_string(opt_.max_output_bytes) + " bytes");
}

void Interp::count_iteration(int line) {
    if (++iterations_ > opt_.max_loop_iterations)
        fail(line, "too many loop iterations (limit " + std::to_string(opt_.max_loop_iterations) + ")");
}

void Interp::enter_call(int line) {
    if (++call_depth_ > opt_.max_call_depth) {
        --call_depth_;
        fail(line, "maximum call depth exceeded (" + std::to_string(opt_.max_call_depth) + "); runaway recursion?");
    }
}

void Interp::undefined_error(const Value& v, int line) const {
    fail(line, v.s.empty() ? std::string("undefined value") : v.s);
}

// ---------------------------------------------------------------------------------------------
// Attribute and item access

Value Interp::getattr(const Value& obj, const std::string& name, int line) {
    switch (obj.t) {
        case Value::T::Undefined: undefined_error(obj, line);
        case Value::T::Dict: {
            auto& d = obj.as_dict();
            if (!d.is_namespace) {
                Value m = builtin_method(*this, obj, name);
                if (!m.is_undefined()) return m;
            }
            if (Value* v = d.find(std::string_view(name))) return *v;
            return missing_attr(obj, name);
        }
        case Value::T::Loop: {
            auto& l = obj.as_loop();
            size_t n = l.items->size();
            size_t i = l.index0;
            if (name == "index") return Value::integer((int64_t)i + 1);
            if (name == "index0") return Value::integer((int64_t)i);
            if (name == "revindex") return Value::integer((int64_t)(n - i));
            if (name == "revindex0") return Value::integer((int64_t)(n - i - 1));
            if (name == "first") return Value::boolean(i == 0);
            if (name == "last") return Value::boolean(i + 1 == n);
            if (name == "length") return Value::integer((int64_t)n);
            if (name == "depth") return Value::integer(l.depth0 + 1);
            if (name == "depth0") return Value::integer(l.depth0);
            if (name == "previtem")
                return i > 0 ? (*l.items)[i - 1] : Value::undefined("there is no previous item");
            if (name == "nextitem")
                return i + 1 < n ? (*l.items)[i + 1] : Value::undefined("there is no next item");
            if (name == "cycle") {
                auto lp = std::static_pointer_cast<LoopObj>(obj.o);
                return Value::func("cycle", [lp](Interp&, Args& args, int ln) -> Value {
                    if (args.pos.empty()) fail(ln, "loop.cycle: no items given");
                    return args.pos[lp->index0 % args.pos.size()];
                });
            }
            if (name == "changed") {
                auto lp = std::static_pointer_cast<LoopObj>(obj.o);
                return Value::func("changed", [lp](Interp&, Args& args, int) -> Value {
                    Value cur = Value::list(args.pos);
                    if (lp->last_changed && values_equal(*lp->last_changed, cur)) return Value::boolean(false);
                    lp->last_changed = std::make_shared<Value>(cur);
                    return Value::boolean(true);
                });
            }
            return missing_attr(obj, name);
        }
        default: {
            Value m = builtin_method(*this, obj, name);
            if (!m.is_undefined()) return m;
            return missing_attr(obj, name);
        }
    }
}

Value Interp::getitem(const Value& obj, const Value& key, int line) {
    switch (obj.t) {
        case Value::T::Undefined: undefined_error(obj, line);
        case Value::T::List: {
            if (obj.as_list().lazy) return Value::undefined("'generator' object is not subscriptable");
            if (key.is_int()) {
                const auto& items = obj.as_list().items;
                int64_t k = key.as_int();
                int64_t n = (int64_t)items.size();
                if (k < 0) k += n;
                if (k < 0 || k >= n)
                    return Value::undefined(object_desc(obj) + " has no element " + std::to_string(key.as_int()));
                return items[(size_t)k];
            }
            break;
        }
        case Value::T::String: {
            if (key.is_int()) {
                auto cps = utf8_decode(obj.s);
                int64_t k = key.as_int();
                int64_t n = (int64_t)cps.size();
                if (k < 0) k += n;
                if (k < 0 || k >= n)
                    return Value::undefined(object_desc(obj) + " has no element " + std::to_string(key.as_int()));
                return Value::string(utf8_encode(cps, (size_t)k, (size_t)k + 1));
            }
            break;
        }
        case Value::T::Dict: {
            auto& d = obj.as_dict();
            if (!d.is_namespace) {
                if (key.is_list() && !key.as_list().tuple) fail(line, "unhashable type: 'list'");
                if (key.is_dict()) fail(line, "unhashable type: 'dict'");
                if (Value* v = d.find(key)) return *v;
                if (key.is_string()) {
                    Value m = builtin_method(*this, obj, key.s);
                    if (!m.is_undefined()) return m;
                }
                if (key.is_string()) return missing_attr(obj, key.s);
                return Value::undefined(object_desc(obj) + " has no element " + key.repr());
            }
            break;
        }
        default: break;
    }
    if (key.is_string()) return getattr(obj, key.s, line);
    return Value::undefined(object_desc(obj) + " has no element " + key.repr());
}

std::vector<Value> Interp::iterate(const Value& v, int line) {
    switch (v.t) {
        case Value::T::Undefined: return {};
        case Value::T::List: return v.as_list().items;
        case Value::T::Dict: {
            auto& d = v.as_dict();
            if (d.is_namespace) break;
            std::vector<Value> keys;
            keys.reserve(d.items.size());
            for (auto& kv : d.items) keys.push_back(kv.first);
            return keys;
        }
        case Value::T::String: {
            std::vector<Value> chars;
            for (uint32_t c : utf8_decode(v.s)) {
                std::string s;
                utf8_append(s, c);
                chars.push_back(Value::string(std::move(s)));
            }
            return chars;
        }
        default: break;
    }
    fail(line, "'" + v.type_name() + "' object is not iterable");
}

Value Interp::call(const Value& callee, Args& args, int line) {
    if (callee.t == Value::T::Func) return callee.as_func().fn(*this, args, line);
    if (callee.t == Value::T::Loop) {
        auto& l = callee.as_loop();
        if (l.recurse.t == Value::T::Func) return l.recurse.as_func().fn(*this, args, line);
        fail(line, "the loop is not recursive: add 'recursive' to the for statement to call loop()");
    }
    if (callee.is_undefined()) undefined_error(callee, line);
    fail(line, "'" + callee.type_name() + "' object is not callable");
}

// ---------------------------------------------------------------------------------------------
// Operators

Value Interp::binary(Op op, const Value& a, const Value& b, int line) {
    using T = Value::T;
    switch (op) {
        case Op::Eq: return Value::boolean(values_equal(a, b));
        case Op::Ne: return Value::boolean(!values_equal(a, b));
        case Op::In: return Value::boolean(contains(b, a, line));
        case Op::NotIn: return Value::boolean(!contains(b, a, line));
        default: break;
    }
    if (a.is_undefined()) undefined_error(a, line);
    if (b.is_undefined()) undefined_error(b, line);
    auto bad = [&](const char* sym) -> Value {
        fail(line, std::string("unsupported operand type(s) for ") + sym + ": '" + a.type_name() + "' and '" +
                       b.type_name() + "'");
    };
    bool nums = a.is_number() && b.is_number();
    bool floats = nums && (a.t == T::Float || b.t == T::Float);
    switch (op) {
        case Op::Lt: return Value::boolean(compare_values(a, b, line) < 0);
        case Op::Le: return Value::boolean(compare_values(a, b, line) <= 0);
        case Op::Gt: return Value::boolean(compare_values(a, b, line) > 0);
        case Op::Ge: return Value::boolean(compare_values(a, b, line) >= 0);
        case Op::Add: {
            if (floats) return Value::number(a.as_float() + b.as_float());
            if (nums) {
                int64_t r;
                bool o = __builtin_add_overflow(a.as_int(), b.as_int(), &r);
                return Value::integer(checked(o, r, line));
            }
            if (a.is_string() && b.is_string()) {
                check_size(a.s.size() + b.s.size(), line);
                if (a.markup || b.markup)  // Markup + str escapes the plain operand
                    return Value::markup_string((a.markup ? a.s : html_escape(a.s)) + (b.markup ? b.s : html_escape(b.s)));
                return Value::string(a.s + b.s);
            }
            if (a.is_list() && b.is_list() && a.as_list().tuple == b.as_list().tuple) {
                std::vector<Value> items = a.as_list().items;
                const auto& more = b.as_list().items;
                check_size((items.size() + more.size()) * sizeof(Value), line);
                items.insert(items.end(), more.begin(), more.end());
                return Value::list(std::move(items), a.as_list().tuple);
            }
            return bad("+");
        }
        case Op::Sub: {
            if (floats) return Value::number(a.as_float() - b.as_float());
            if (nums) {
                int64_t r;
                bool o = __builtin_sub_overflow(a.as_int(), b.as_int(), &r);
                return Value::integer(checked(o, r, line));
            }
            return bad("-");
        }
        case Op::Mul: {
            if (floats) return Value::number(a.as_float() * b.as_float());
            if (nums) {
                int64_t r;
                bool o = __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
                return Value::integer(checked(o, r, line));
            }
            const Value* seq = a.is_int() ? &b : &a;
            const Value* cnt = a.is_int() ? &a : &b;
            if (cnt->is_int() && (seq->is_string() || seq->is_list())) {
                int64_t n = std::max<int64_t>(0, cnt->as_int());
                if (seq->is_string()) {
                    if (n > 0 && seq->s.size() > opt_.max_output_bytes / (size_t)n) check_size(SIZE_MAX, line);
                    std::string r;
                    r.reserve(seq->s.size() * (size_t)n);
                    for (int64_t k = 0; k < n; ++k) r += seq->s;
                    Value rv = Value::string(std::move(r));
                    rv.markup = seq->markup;
                    return rv;
                }
                const auto& items = seq->as_list().items;
                if (n > 0 && items.size() * sizeof(Value) > opt_.max_output_bytes / (size_t)n) check_size(SIZE_MAX, line);
                std::vector<Value> r;
                for (int64_t k = 0; k < n; ++k) r.insert(r.end(), items.begin(), items.end());
                return Value::list(std::move(r), seq->as_list().tuple);
            }
            return bad("*");
        }
        case Op::Div: {
            if (!nums) return bad("/");
            if (b.as_float() == 0) fail(line, "division by zero");
            return Value::number(a.as_float() / b.as_float());
        }
        case Op::FloorDiv: {
            if (!nums) return bad("//");
            if (floats) {
                if (b.as_float() == 0) fail(line, "float floor division by zero");
                return Value::number(std::floor(a.as_float() / b.as_float()));
            }
            int64_t x = a.as_int(), y = b.as_int();
            if (y == 0) fail(line, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) fail(line, "integer overflow");
            int64_t q = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
            return Value::integer(q);
        }
        case Op::Mod: {
            if (a.is_string()) return Value::string(percent_format(*this, a.s, b, line));
            if (!nums) return bad("%");
            if (floats) {
                double x = a.as_float(), y = b.as_float();
                if (y == 0) fail(line, "float modulo by zero");
                double r = std::fmod(x, y);
                if (r != 0 && ((r < 0) != (y < 0))) r += y;
                return Value::number(r);
            }
            int64_t x = a.as_int(), y = b.as_int();
            if (y == 0) fail(line, "integer division or modulo by zero");
            if (y == -1) return Value::integer(0);
            int64_t r = x % y;
            if (r != 0 && ((r < 0) != (y < 0))) r += y;
            return Value::integer(r);
        }
        case Op::Pow: {
            if (!nums) return bad("**");
            if (!floats && b.as_int() >= 0) {
                int64_t base = a.as_int(), e = b.as_int(), r = 1;
                while (e > 0) {
                    if (e & 1) {
                        if (__builtin_mul_overflow(r, base, &r)) fail(line, "integer overflow");
                    }
                    e >>= 1;
                    if (e > 0 && __builtin_mul_overflow(base, base, &base)) fail(line, "integer overflow");
                }
                return Value::integer(r);
            }
            double x = a.as_float(), y = b.as_float();
            if (x == 0 && y < 0) fail(line, "0.0 cannot be raised to a negative power");
            double r = std::pow(x, y);
            if (std::isinf(r) && std::isfinite(x) && std::isfinite(y)) fail(line, "numerical result out of range");
            return Value::number(r);
        }
        default: break;
    }
    fail(line, "internal error: bad operator");
}

// ---------------------------------------------------------------------------------------------
// Expressions

void Interp::eval_args(const Expr& e, size_t first, const FramePtr& f, Args& args) {
    for (size_t k = first; k < e.a.size(); ++k) args.pos.push_back(eval(*e.a[k], f));
    for (auto& kv : e.kw) {
        if (kv.first == "*") {  // f(*xs)
            Value v = eval(*kv.second, f);
            if (v.is_undefined()) undefined_error(v, e.line);
            for (auto& x : iterate(v, e.line)) args.pos.push_back(std::move(x));
        } else if (kv.first == "**") {  // f(**d)
            Value v = eval(*kv.second, f);
            if (v.is_undefined()) undefined_error(v, e.line);
            if (!v.is_dict()) fail(e.line, "argument after ** must be a mapping, not " + v.type_name());
            for (auto& item : v.as_dict().items) {
                if (!item.first.is_string()) fail(e.line, "keywords must be strings");
                args.kw.emplace_back(item.first.s, item.second);
            }
        } else {
            args.kw.emplace_back(kv.first, eval(*kv.second, f));
        }
    }
}

Value Interp::eval_filter(const Expr& e, Value input, const FramePtr& f) {
    Args args;
    eval_args(e, 1, f, args);
    return apply_filter(e.name, std::move(input), args, e.line);
}

Value Interp::eval(const Expr& e, const FramePtr& f) {
    check_stack(e.line);
    switch (e.k) {
        case Expr::K::Const: return e.val;
        case Expr::K::Name: {
            if (Value* v = f->lookup(e.name)) return *v;
            return Value::undefined("'" + e.name + "' is undefined");
        }
        case Expr::K::ListLit:
        case Expr::K::TupleLit: {
            std::vector<Value> items;
            items.reserve(e.a.size());
            for (auto& c : e.a) items.push_back(eval(*c, f));
            return Value::list(std::move(items), e.k == Expr::K::TupleLit);
        }
        case Expr::K::DictLit: {
            Value d = Value::dict();
            for (size_t k = 0; k + 1 < e.a.size(); k += 2) {
                Value key = eval(*e.a[k], f);
                if ((key.is_list() && !key.as_list().tuple) || key.is_dict())
                    fail(e.line, "unhashable type: '" + key.type_name() + "'");
                d.as_dict().set(key, eval(*e.a[k + 1], f));
            }
            return d;
        }
        case Expr::K::Attr: return getattr(eval(*e.a[0], f), e.name, e.line);
        case Expr::K::Item: return getitem(eval(*e.a[0], f), eval(*e.a[1], f), e.line);
        case Expr::K::Slice: {
            Value obj = eval(*e.a[0], f);
            Value parts[3];
            for (int k = 0; k < 3; ++k)
                parts[k] = e.a[(size_t)k + 1] ? eval(*e.a[(size_t)k + 1], f) : Value::none();
            return slice_value(obj, parts[0], parts[1], parts[2], e.line);
        }
        case Expr::K::Call: {
            Value callee = eval(*e.a[0], f);
            Args args;
            eval_args(e, 1, f, args);
            return call(callee, args, e.line);
        }
        case Expr::K::Filter: return eval_filter(e, eval(*e.a[0], f), f);
        case Expr::K::Test: {
            Value v = eval(*e.a[0], f);
            Args args;
            eval_args(e, 1, f, args);
            bool r = apply_test(e.name, v, args, e.line);
            return Value::boolean(r != e.negated);
        }
        case Expr::K::Unary: {
            Value v = eval(*e.a[0], f);
            if (e.op == Op::Not) return Value::boolean(!v.truthy());
            if (v.is_undefined()) undefined_error(v, e.line);
            if (!v.is_number())
                fail(e.line, std::string("bad operand type for unary ") + (e.op == Op::Neg ? "-" : "+") + ": '" +
                                 v.type_name() + "'");
            if (e.op == Op::Pos) return v.t == Value::T::Bool ? Value::integer(v.as_int()) : v;
            if (v.t == Value::T::Float) return Value::number(-v.f);
            if (v.as_int() == INT64_MIN) fail(e.line, "integer overflow");
            return Value::integer(-v.as_int());
        }
        case Expr::K::Binary: {
            if (e.op == Op::And) {
                Value l = eval(*e.a[0], f);
                return l.truthy() ? eval(*e.a[1], f) : l;
            }
            if (e.op == Op::Or) {
                Value l = eval(*e.a[0], f);
                return l.truthy() ? l : eval(*e.a[1], f);
            }
            Value l = eval(*e.a[0], f);
            Value r = eval(*e.a[1], f);
            return binary(e.op, l, r, e.line);
        }
        case Expr::K::Compare: {
            Value l = eval(*e.a[0], f);
            for (size_t k = 0; k < e.ops.size(); ++k) {
                Value r = eval(*e.a[k + 1], f);
                if (!binary(e.ops[k], l, r, e.line).truthy()) return Value::boolean(false);
                l = std::move(r);
            }
            return Value::boolean(true);
        }
        case Expr::K::Cond: {
            if (eval(*e.a[1], f).truthy()) return eval(*e.a[0], f);
            if (e.a[2]) return eval(*e.a[2], f);
            return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                                    " evaluated to false and no else section was defined");
        }
        case Expr::K::Concat: {
            std::string s;
            for (auto& c : e.a) {
                s += eval(*c, f).str();
                check_size(s.size(), e.line);
            }
            return Value::string(std::move(s));
        }
    }
    fail(e.line, "internal error: bad expression");
}

// ---------------------------------------------------------------------------------------------
// Statements

void Interp::assign(const Expr& target, Value v, const FramePtr& f) {
    if (target.k == Expr::K::Name) {
        f->set(target.name, std::move(v));
        return;
    }
    if (target.k == Expr::K::Attr) {  // ns.attr = value
        Value* ns = f->lookup(target.a[0]->name);
        if (!ns || ns->t != Value::T::Dict || !ns->as_dict().is_namespace)
            fail(target.line, "cannot assign attribute '" + target.name + "' on '" + target.a[0]->name +
                                  "': it is not a namespace()");
        ns->as_dict().set(std::string_view(target.name), std::move(v));
        return;
    }
    if (target.k == Expr::K::TupleLit) {
        if (v.is_undefined()) undefined_error(v, target.line);
        std::vector<Value> items = iterate(v, target.line);
        if (items.size() != target.a.size())
            fail(target.line, (items.size() > target.a.size() ? "too many values to unpack (expected "
                                                              : "not enough values to unpack (expected ") +
                                  std::to_string(target.a.size()) + ", got " + std::to_string(items.size()) + ")");
        for (size_t k = 0; k < items.size(); ++k) assign(*target.a[k], std::move(items[k]), f);
        return;
    }
    fail(target.line, "cannot assign to this expression");
}

Value Interp::make_macro(const Stmt& s, const FramePtr& f) {
    std::weak_ptr<Frame> wf = f;  // weak: the macro is stored in that frame
    const Stmt* sp = &s;
    return Value::func(s.text, [wf, sp](Interp& in, Args& args, int line) -> Value {
        FramePtr parent = wf.lock();
        if (!parent) fail(line, "macro '" + sp->text + "' called after its scope ended");
        CallDepth depth(in, line);
        auto frame = std::make_shared<Frame>();
        frame->parent = parent;
        size_t np = sp->params.size();
        std::vector<bool> bound(np, false);
        std::vector<Value> varargs;
        Value kwargs = Value::dict();
        for (size_t k = 0; k < args.pos.size(); ++k) {
            if (k < np) {
                frame->set(sp->params[k].first, args.pos[k]);
                bound[k] = true;
            } else {
                varargs.push_back(args.pos[k]);
            }
        }
        for (auto& kv : args.kw) {
            if (kv.first == "caller") {
                frame->set("caller", kv.second);
                continue;
            }
            size_t k = 0;
            while (k < np && sp->params[k].first != kv.first) ++k;
            if (k == np) {
                kwargs.as_dict().set(std::string_view(kv.first), kv.second);
                continue;
            }
            if (bound[k]) fail(line, "macro '" + sp->text + "' got multiple values for argument '" + kv.first + "'");
            frame->set(kv.first, kv.second);
            bound[k] = true;
        }
        for (size_t k = 0; k < np; ++k) {
            if (bound[k]) continue;
            const auto& p = sp->params[k];
            frame->set(p.first, p.second ? in.eval(*p.second, frame)
                                         : Value::undefined("parameter '" + p.first + "' was not provided"));
        }
        frame->set("varargs", Value::list(std::move(varargs), true));
        frame->set("kwargs", std::move(kwargs));
        std::string out;
        in.exec(sp->body, frame, out);
        return Value::string(std::move(out));
    });
}

Flow Interp::exec(const Body& body, const FramePtr& f, std::string& out) {
    for (const auto& s : body) {
        Flow fl = exec_stmt(*s, f, out);
        if (fl != Flow::Normal) return fl;
    }
    return Flow::Normal;
}

Flow Interp::exec_for(const Stmt& s, const FramePtr& f, std::string& out, const Value& iterable, int depth0) {
    std::vector<Value> all = iterate(iterable, s.line);
    auto items = std::make_shared<std::vector<Value>>();
    if (s.cond) {
        for (auto& v : all) {
            count_iteration(s.line);
            auto tmp = std::make_shared<Frame>();
            tmp->parent = f;
            assign(*s.target, v, tmp);
            if (eval(*s.cond, tmp).truthy()) items->push_back(std::move(v));
        }
    } else {
        *items = std::move(all);
    }
    if (items->empty()) {
        if (!s.else_body.empty()) {
            auto frame = std::make_shared<Frame>();
            frame->parent = f;
            exec(s.else_body, frame, out);  // break/continue cannot appear here (checked by the parser)
        }
        return Flow::Normal;
    }
    auto loop = new_obj<LoopObj>();
    loop->items = items;
    loop->depth0 = depth0;
    if (s.recursive) {
        std::weak_ptr<Frame> wf = f;
        const Stmt* sp = &s;
        loop->recurse = Value::func("loop", [wf, sp, depth0](Interp& in, Args& args, int line) -> Value {
            FramePtr parent = wf.lock();
            if (!parent) fail(line, "recursive loop called after its scope ended");
            if (args.pos.size() != 1 || !args.kw.empty()) fail(line, "loop() takes exactly one argument");
            CallDepth depth(in, line);
            std::string buf;
            in.exec_for(*sp, parent, buf, args.pos[0], depth0 + 1);
            return Value::string(std::move(buf));
        });
    }
    Value loop_val;
    loop_val.t = Value::T::Loop;
    loop_val.o = loop;
    for (size_t k = 0; k < items->size(); ++k) {
        count_iteration(s.line);
        loop->index0 = k;
        auto frame = std::make_shared<Frame>();
        frame->parent = f;
        assign(*s.target, (*items)[k], frame);
        frame->set("loop", loop_val);
        Flow fl = exec(s.body, frame, out);
        if (fl == Flow::Break) break;
    }
    return Flow::Normal;
}

Flow Interp::exec_stmt(const Stmt& s, const FramePtr& f, std::string& out) {
    check_stack(s.line);
    switch (s.k) {
        case Stmt::K::Text:
            out += s.text;
            check_size(out.size(), s.line);
            return Flow::Normal;
        case Stmt::K::Output: {
            Value v = eval(*s.expr, f);
            if (v.t == Value::T::String) out += v.s;
            else out += v.str();
            check_size(out.size(), s.line);
            return Flow::Normal;
        }
        case Stmt::K::If:
            for (const auto& br : s.branches)
                if (!br.first || eval(*br.first, f).truthy()) return exec(br.second, f, out);
            return Flow::Normal;
        case Stmt::K::For: return exec_for(s, f, out, eval(*s.expr, f), 0);
        case Stmt::K::Set: assign(*s.target, eval(*s.expr, f), f); return Flow::Normal;
        case Stmt::K::SetBlock: {
            std::string buf;
            Flow fl = exec(s.body, f, buf);
            Value v = Value::string(std::move(buf));
            for (const auto& flt : s.filters) v = eval_filter(*flt, std::move(v), f);
            assign(*s.target, std::move(v), f);
            return fl;
        }
        case Stmt::K::Macro: f->set(s.text, make_macro(s, f)); return Flow::Normal;
        case Stmt::K::CallBlock: {
            std::weak_ptr<Frame> wf = f;
            const Stmt* sp = &s;
            Value caller = Value::func("caller", [wf, sp](Interp& in, Args& args, int line) -> Value {
                FramePtr parent = wf.lock();
                if (!parent) fail(line, "caller() used after its scope ended");
                CallDepth depth(in, line);
                auto frame = std::make_shared<Frame>();
                frame->parent = parent;
                for (size_t k = 0; k < sp->params.size(); ++k) {
                    const auto& p = sp->params[k];
                    Value v;
                    bool have = false;
                    if (k < args.pos.size()) {
                        v = args.pos[k];
                        have = true;
                    }
                    for (auto& kv : args.kw)
                        if (kv.first == p.first) {
                            v = kv.second;
                            have = true;
                        }
                    if (!have) v = p.second ? in.eval(*p.second, frame) : Value::undefined("parameter '" + p.first + "' was not provided");
                    frame->set(p.first, std::move(v));
                }
                std::string buf;
                in.exec(sp->body, frame, buf);
                return Value::string(std::move(buf));
            });
            const Expr& call_expr = *s.expr;
            Value callee = eval(*call_expr.a[0], f);
            Args args;
            eval_args(call_expr, 1, f, args);
            args.kw.emplace_back("caller", std::move(caller));
            Value r = call(callee, args, s.line);
            out += r.str();
            check_size(out.size(), s.line);
            return Flow::Normal;
        }
        case Stmt::K::FilterBlock: {
            std::string buf;
            Flow fl = exec(s.body, f, buf);
            Value v = Value::string(std::move(buf));
            for (const auto& flt : s.filters) v = eval_filter(*flt, std::move(v), f);
            out += v.str();
            check_size(out.size(), s.line);
            return fl;
        }
        case Stmt::K::Break: return Flow::Break;
        case Stmt::K::Continue: return Flow::Continue;
        case Stmt::K::Do: eval(*s.expr, f); return Flow::Normal;
        case Stmt::K::With: {
            auto frame = std::make_shared<Frame>();
            frame->parent = f;
            for (const auto& p : s.params) frame->set(p.first, eval(*p.second, f));
            return exec(s.body, frame, out);
        }
        case Stmt::K::Scope: return exec(s.body, f, out);
    }
    return Flow::Normal;
}

}  // namespace yiti::jinja::detail

namespace yiti::jinja {

Template Template::parse(std::string_view source, const Options& opt) {
    Template t;
    t.prog_ = detail::parse_program(source, opt);
    return t;
}

std::string Template::render(const nlohmann::ordered_json& context) const {
    using namespace detail;
    if (!prog_) fail(0, "render() on a template that was not parsed");
    // Every object made by this render is released when it ends (see ObjRegistry).
    struct RegistryScope {
        ObjRegistry reg;
        ObjRegistry* prev;
        RegistryScope() : prev(current_registry()) { current_registry() = &reg; }
        ~RegistryScope() {
            current_registry() = prev;
            reg.release_all();
        }
    } scope;
    Interp in(prog_->opt);
    auto globals = std::make_shared<Frame>();
    install_globals(*globals);
    auto root = std::make_shared<Frame>();
    root->parent = globals;
    if (context.is_object())
        for (auto it = context.begin(); it != context.end(); ++it) root->set(it.key(), value_from_json(it.value()));
    std::string out;
    in.exec(prog_->body, root, out);
    return out;
}

}  // namespace yiti::jinja
