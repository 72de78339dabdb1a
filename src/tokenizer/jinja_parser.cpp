// Jinja parser: turns the token stream into statements and expressions, following the grammar and
// operator precedence of Jinja2's parser.
#include <algorithm>
#include <initializer_list>

#include "tokenizer/jinja_internal.h"

namespace yiti::jinja::detail {

namespace {

std::string describe(const Token& t) {
    switch (t.t) {
        case Token::T::Data: return "template data";
        case Token::T::VarBegin: return "'{{'";
        case Token::T::VarEnd: return "'}}'";
        case Token::T::BlockBegin: return "'{%'";
        case Token::T::BlockEnd: return "'%}'";
        case Token::T::Name: return "'" + t.s + "'";
        case Token::T::String: return "string literal";
        case Token::T::Int: return "integer literal";
        case Token::T::Float: return "float literal";
        case Token::T::Op: return "'" + t.s + "'";
        case Token::T::Eof: return "end of template";
    }
    return "token";
}

class Parser {
public:
    Parser(std::vector<Token> toks, const Options& opt) : t_(std::move(toks)), opt_(opt) {}

    Body parse_template() {
        std::string which;
        Body b = parse_body({}, &which, nullptr, 0);
        return b;
    }

private:
    // --- token helpers ---
    const Token& cur() const { return t_[p_]; }
    const Token& peek(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
    void next() {
        if (p_ + 1 < t_.size()) ++p_;
    }
    bool is_op(const char* s) const { return cur().t == Token::T::Op && cur().s == s; }
    bool is_name(const char* s) const { return cur().t == Token::T::Name && cur().s == s; }
    bool skip_op(const char* s) {
        if (!is_op(s)) return false;
        next();
        return true;
    }
    bool skip_name(const char* s) {
        if (!is_name(s)) return false;
        next();
        return true;
    }
    [[noreturn]] void unexpected(const char* expected = nullptr) const {
        std::string msg = "unexpected " + describe(cur());
        if (expected) msg += std::string(", expected ") + expected;
        fail(cur().line, msg);
    }
    void expect_op(const char* s) {
        if (!skip_op(s)) unexpected((std::string("'") + s + "'").c_str());
    }
    std::string expect_name() {
        if (cur().t != Token::T::Name) unexpected("a name");
        std::string s = cur().s;
        next();
        return s;
    }
    void expect_block_end() {
        if (cur().t != Token::T::BlockEnd) unexpected("end of statement block '%}'");
        next();
    }

    struct DepthGuard {
        Parser& p;
        DepthGuard(Parser& p_, int line) : p(p_) {
            if (++p.depth_ > p.opt_.max_parse_depth) fail(line, "template nesting too deep");
        }
        ~DepthGuard() { --p.depth_; }
    };

    ExprPtr mk(Expr::K k, int line) { return std::make_unique<Expr>(k, line); }
    // --- statements ---
    Body parse_body(std::initializer_list<const char*> ends, std::string* which, const char* opener, int open_line) {
        Body body;
        for (;;) {
            const Token& tok = cur();
            switch (tok.t) {
                case Token::T::Data: {
                    auto s = std::make_unique<Stmt>(Stmt::K::Text, tok.line);
                    s->text = tok.s;
                    body.push_back(std::move(s));
                    next();
                    break;
                }
                case Token::T::VarBegin: {
                    int line = tok.line;
                    next();
                    auto s = std::make_unique<Stmt>(Stmt::K::Output, line);
                    s->expr = parse_tuple(false, true, {}, false);
                    if (cur().t != Token::T::VarEnd) unexpected("end of print statement '}}'");
                    next();
                    body.push_back(std::move(s));
                    break;
                }
                case Token::T::BlockBegin: {
                    const Token& nt = peek();
                    if (nt.t == Token::T::Name) {
                        for (const char* e : ends) {
                            if (nt.s == e) {
                                next();
                                *which = nt.s;
                                next();
                                return body;
                            }
                        }
                    }
                    next();
                    body.push_back(parse_statement());
                    break;
                }
                case Token::T::Eof:
                    if (ends.size()) {
                        std::string exp;
                        for (const char* e : ends) exp += std::string(exp.empty() ? "" : " or ") + "'" + e + "'";
                        fail(open_line, std::string("unterminated '") + opener + "' block: reached end of template, expected " +
                                            exp);
                    }
                    return body;
                default: unexpected();
            }
        }
    }

    StmtPtr parse_statement() {
        const Token& tok = cur();
        int line = tok.line;
        DepthGuard g(*this, line);
        if (tok.t != Token::T::Name) unexpected("a statement name");
        std::string name = tok.s;
        next();
        if (name == "if") return parse_if(line);
        if (name == "for") return parse_for(line);
        if (name == "set") return parse_set(line);
        if (name == "macro") return parse_macro(line);
        if (name == "call") return parse_call_block(line);
        if (name == "filter") return parse_filter_block(line);
        if (name == "with") return parse_with(line);
        if (name == "break" || name == "continue") {
            auto s = std::make_unique<Stmt>(name == "break" ? Stmt::K::Break : Stmt::K::Continue, line);
            if (loop_depth_ == 0) fail(line, "'" + name + "' outside of a loop");
            expect_block_end();
            return s;
        }
        if (name == "do") {
            auto s = std::make_unique<Stmt>(Stmt::K::Do, line);
            s->expr = parse_tuple(false, true, {}, false);
            expect_block_end();
            return s;
        }
        if (name == "generation") {
            // Hugging Face's AssistantTracker extension: renders its body unchanged.
            auto s = std::make_unique<Stmt>(Stmt::K::Scope, line);
            expect_block_end();
            std::string which;
            s->body = parse_body({"endgeneration"}, &which, "generation", line);
            expect_block_end();
            return s;
        }
        static const char* const unsupported[] = {"include", "extends", "import", "from", "block", "autoescape",
                                                  "trans", "pluralize", "endtrans", "endblock", "endautoescape"};
        for (const char* u : unsupported)
            if (name == u) fail(line, "unsupported statement '" + name + "'");
        if (name.rfind("end", 0) == 0 || name == "elif" || name == "else")
            fail(line, "unexpected '" + name + "' (no matching block is open)");
        fail(line, "unknown statement '" + name + "'");
    }

    StmtPtr parse_if(int line) {
        auto s = std::make_unique<Stmt>(Stmt::K::If, line);
        ExprPtr cond = parse_tuple(false, false, {}, false);
        expect_block_end();
        for (;;) {
            std::string which;
            Body b = parse_body({"elif", "else", "endif"}, &which, "if", line);
            s->branches.emplace_back(std::move(cond), std::move(b));
            if (which == "elif") {
                cond = parse_tuple(false, false, {}, false);
                expect_block_end();
            } else if (which == "else") {
                expect_block_end();
                Body eb = parse_body({"endif"}, &which, "if", line);
                s->branches.emplace_back(nullptr, std::move(eb));
                expect_block_end();
                return s;
            } else {
                expect_block_end();
                return s;
            }
        }
    }

    StmtPtr parse_for(int line) {
        auto s = std::make_unique<Stmt>(Stmt::K::For, line);
        s->target = parse_assign_target(false, {"in"});
        if (!skip_name("in")) unexpected("'in'");
        s->expr = parse_tuple(false, false, {"recursive"}, false);
        if (skip_name("if")) s->cond = parse_expression(true);
        if (skip_name("recursive")) s->recursive = true;
        expect_block_end();
        ++loop_depth_;
        std::string which;
        s->body = parse_body({"endfor", "else"}, &which, "for", line);
        --loop_depth_;
        if (which == "else") {
            expect_block_end();
            s->else_body = parse_body({"endfor"}, &which, "for", line);
        }
        expect_block_end();
        return s;
    }

    StmtPtr parse_set(int line) {
        ExprPtr target = parse_assign_target(true, {});
        if (skip_op("=")) {
            auto s = std::make_unique<Stmt>(Stmt::K::Set, line);
            s->target = std::move(target);
            s->expr = parse_tuple(false, true, {}, false);
            expect_block_end();
            return s;
        }
        auto s = std::make_unique<Stmt>(Stmt::K::SetBlock, line);
        s->target = std::move(target);
        while (skip_op("|")) s->filters.push_back(parse_filter(nullptr));
        expect_block_end();
        std::string which;
        int saved = loop_depth_;
        loop_depth_ = 0;
        s->body = parse_body({"endset"}, &which, "set", line);
        loop_depth_ = saved;
        expect_block_end();
        return s;
    }

    void parse_params(std::vector<std::pair<std::string, ExprPtr>>& params) {
        expect_op("(");
        while (!is_op(")")) {
            if (!params.empty()) expect_op(",");
            if (is_op(")")) break;
            std::string name = expect_name();
            ExprPtr def;
            if (skip_op("=")) def = parse_expression(true);
            else if (!params.empty() && params.back().second)
                fail(cur().line, "non-default argument '" + name + "' follows default argument");
            params.emplace_back(std::move(name), std::move(def));
        }
        next();
    }

    StmtPtr parse_macro(int line) {
        auto s = std::make_unique<Stmt>(Stmt::K::Macro, line);
        s->text = expect_name();
        parse_params(s->params);
        expect_block_end();
        std::string which;
        int saved = loop_depth_;
        loop_depth_ = 0;
        s->body = parse_body({"endmacro"}, &which, "macro", line);
        loop_depth_ = saved;
        expect_block_end();
        return s;
    }

    StmtPtr parse_call_block(int line) {
        auto s = std::make_unique<Stmt>(Stmt::K::CallBlock, line);
        if (is_op("(")) parse_params(s->params);
        s->expr = parse_expression(true);
        if (s->expr->k != Expr::K::Call) fail(line, "expected a call after 'call'");
        expect_block_end();
        std::string which;
        int saved = loop_depth_;
        loop_depth_ = 0;
        s->body = parse_body({"endcall"}, &which, "call", line);
        loop_depth_ = saved;
        expect_block_end();
        return s;
    }

    StmtPtr parse_filter_block(int line) {
        auto s = std::make_unique<Stmt>(Stmt::K::FilterBlock, line);
        s->filters.push_back(parse_filter(nullptr));
        while (skip_op("|")) s->filters.push_back(parse_filter(nullptr));
        expect_block_end();
        std::string which;
        s->body = parse_body({"endfilter"}, &which, "filter", line);
        expect_block_end();
        return s;
    }

    StmtPtr parse_with(int line) {
        auto s = std::make_unique<Stmt>(Stmt::K::With, line);
        while (cur().t != Token::T::BlockEnd) {
            if (!s->params.empty()) expect_op(",");
            std::string name = expect_name();
            expect_op("=");
            s->params.emplace_back(std::move(name), parse_expression(true));
        }
        expect_block_end();
        std::string which;
        s->body = parse_body({"endwith"}, &which, "with", line);
        expect_block_end();
        return s;
    }

    ExprPtr parse_assign_target(bool with_namespace, std::initializer_list<const char*> extra_end) {
        int line = cur().line;
        if (with_namespace && cur().t == Token::T::Name && peek().t == Token::T::Op && peek().s == ".") {
            auto obj = mk(Expr::K::Name, line);
            obj->name = expect_name();
            next();
            auto e = mk(Expr::K::Attr, line);
            e->name = expect_name();
            e->a.push_back(std::move(obj));
            return e;
        }
        ExprPtr t = parse_tuple(true, true, extra_end, false);
        check_target(*t);
        return t;
    }

    void check_target(const Expr& e) {
        if (e.k == Expr::K::Name) {
            if (e.name == "true" || e.name == "false" || e.name == "none" || e.name == "True" ||
                e.name == "False" || e.name == "None")
                fail(e.line, "cannot assign to '" + e.name + "'");
            return;
        }
        if (e.k == Expr::K::TupleLit) {
            for (auto& c : e.a) check_target(*c);
            return;
        }
        fail(e.line, "cannot assign to this expression");
    }

    // --- expressions ---
    bool is_tuple_end(std::initializer_list<const char*> extra) const {
        const Token& t = cur();
        if (t.t == Token::T::VarEnd || t.t == Token::T::BlockEnd || t.t == Token::T::Eof) return true;
        if (t.t == Token::T::Op && t.s == ")") return true;
        if (t.t == Token::T::Name)
            for (const char* e : extra)
                if (t.s == e) return true;
        return false;
    }

    ExprPtr parse_tuple(bool simplified, bool with_condexpr, std::initializer_list<const char*> extra,
                        bool explicit_parens) {
        int line = cur().line;
        std::vector<ExprPtr> args;
        bool is_tuple = false;
        for (;;) {
            if (!args.empty()) expect_op(",");
            if (is_tuple_end(extra)) break;
            if (simplified) args.push_back(parse_primary());
            else args.push_back(parse_expression(with_condexpr));
            if (is_op(",")) is_tuple = true;
            else break;
        }
        if (!is_tuple) {
            if (!args.empty()) return std::move(args[0]);
            if (!explicit_parens) unexpected("an expression");
        }
        auto e = mk(Expr::K::TupleLit, line);
        e->a = std::move(args);
        return e;
    }

    ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

    ExprPtr parse_condexpr() {
        DepthGuard g(*this, cur().line);
        ExprPtr e = parse_or();
        while (is_name("if")) {
            int line = cur().line;
            next();
            ExprPtr cond = parse_or();
            ExprPtr other;
            if (skip_name("else")) other = parse_condexpr();
            auto c = mk(Expr::K::Cond, line);
            c->a.push_back(std::move(e));
            c->a.push_back(std::move(cond));
            c->a.push_back(std::move(other));
            e = bounded(std::move(c));
        }
        return e;
    }

    ExprPtr binary(Op op, int line, ExprPtr l, ExprPtr r) {
        auto e = mk(Expr::K::Binary, line);
        e->op = op;
        e->a.push_back(std::move(l));
        e->a.push_back(std::move(r));
        return bounded(std::move(e));
    }

    ExprPtr parse_or() {
        ExprPtr e = parse_and();
        while (is_name("or")) {
            int line = cur().line;
            next();
            e = binary(Op::Or, line, std::move(e), parse_and());
        }
        return e;
    }

    ExprPtr parse_and() {
        ExprPtr e = parse_not();
        while (is_name("and")) {
            int line = cur().line;
            next();
            e = binary(Op::And, line, std::move(e), parse_not());
        }
        return e;
    }

    ExprPtr parse_not() {
        if (is_name("not")) {
            int line = cur().line;
            DepthGuard g(*this, line);
            next();
            auto e = mk(Expr::K::Unary, line);
            e->op = Op::Not;
            e->a.push_back(parse_not());
            return bounded(std::move(e));
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        int line = cur().line;
        ExprPtr first = parse_math1();
        std::unique_ptr<Expr> cmp;
        for (;;) {
            Op op;
            const Token& t = cur();
            if (t.t == Token::T::Op && t.s == "==") op = Op::Eq;
            else if (t.t == Token::T::Op && t.s == "!=") op = Op::Ne;
            else if (t.t == Token::T::Op && t.s == "<") op = Op::Lt;
            else if (t.t == Token::T::Op && t.s == "<=") op = Op::Le;
            else if (t.t == Token::T::Op && t.s == ">") op = Op::Gt;
            else if (t.t == Token::T::Op && t.s == ">=") op = Op::Ge;
            else if (t.t == Token::T::Name && t.s == "in") op = Op::In;
            else if (t.t == Token::T::Name && t.s == "not" && peek().t == Token::T::Name && peek().s == "in") {
                op = Op::NotIn;
                next();
            } else break;
            next();
            if (!cmp) {
                cmp = mk(Expr::K::Compare, line);
                cmp->a.push_back(std::move(first));
            }
            cmp->ops.push_back(op);
            cmp->a.push_back(parse_math1());
            cmp = bounded(std::move(cmp));
        }
        return cmp ? std::move(cmp) : std::move(first);
    }

    ExprPtr parse_math1() {
        ExprPtr e = parse_concat();
        while (is_op("+") || is_op("-")) {
            Op op = is_op("+") ? Op::Add : Op::Sub;
            int line = cur().line;
            next();
            e = binary(op, line, std::move(e), parse_concat());
        }
        return e;
    }

    ExprPtr parse_concat() {
        int line = cur().line;
        ExprPtr first = parse_math2();
        if (!is_op("~")) return first;
        auto e = mk(Expr::K::Concat, line);
        e->a.push_back(std::move(first));
        while (skip_op("~")) {
            e->a.push_back(parse_math2());
            if ((int)e->a.size() > opt_.max_parse_depth * 50) fail(line, "expression too long");
        }
        return bounded(std::move(e));
    }

    ExprPtr parse_math2() {
        ExprPtr e = parse_pow();
        for (;;) {
            Op op;
            if (is_op("*")) op = Op::Mul;
            else if (is_op("/")) op = Op::Div;
            else if (is_op("//")) op = Op::FloorDiv;
            else if (is_op("%")) op = Op::Mod;
            else break;
            int line = cur().line;
            next();
            e = binary(op, line, std::move(e), parse_pow());
        }
        return e;
    }

    ExprPtr parse_pow() {
        ExprPtr e = parse_unary(true);
        while (is_op("**")) {
            int line = cur().line;
            next();
            e = binary(Op::Pow, line, std::move(e), parse_unary(true));
        }
        return e;
    }

    ExprPtr parse_unary(bool with_filter) {
        int line = cur().line;
        DepthGuard g(*this, line);
        ExprPtr e;
        if (is_op("-") || is_op("+")) {
            Op op = is_op("-") ? Op::Neg : Op::Pos;
            next();
            e = mk(Expr::K::Unary, line);
            e->op = op;
            e->a.push_back(parse_unary(false));
            e = bounded(std::move(e));
        } else {
            e = parse_primary();
        }
        e = parse_postfix(std::move(e));
        if (with_filter) e = parse_filter_expr(std::move(e));
        return e;
    }

    ExprPtr parse_primary() {
        const Token& t = cur();
        int line = t.line;
        DepthGuard g(*this, line);
        switch (t.t) {
            case Token::T::Name: {
                auto e = mk(Expr::K::Const, line);
                if (t.s == "true" || t.s == "True") e->val = Value::boolean(true);
                else if (t.s == "false" || t.s == "False") e->val = Value::boolean(false);
                else if (t.s == "none" || t.s == "None") e->val = Value::none();
                else {
                    e->k = Expr::K::Name;
                    e->name = t.s;
                }
                next();
                return e;
            }
            case Token::T::String: {
                std::string s = t.s;
                next();
                while (cur().t == Token::T::String) {
                    s += cur().s;
                    next();
                }
                auto e = mk(Expr::K::Const, line);
                e->val = Value::string(std::move(s));
                return e;
            }
            case Token::T::Int: {
                auto e = mk(Expr::K::Const, line);
                e->val = Value::integer(t.i);
                next();
                return e;
            }
            case Token::T::Float: {
                auto e = mk(Expr::K::Const, line);
                e->val = Value::number(t.f);
                next();
                return e;
            }
            case Token::T::Op:
                if (t.s == "(") {
                    next();
                    ExprPtr e = parse_tuple(false, true, {}, true);
                    expect_op(")");
                    return e;
                }
                if (t.s == "[") {
                    next();
                    auto e = mk(Expr::K::ListLit, line);
                    while (!is_op("]")) {
                        if (!e->a.empty()) expect_op(",");
                        if (is_op("]")) break;
                        e->a.push_back(parse_expression(true));
                    }
                    next();
                    return bounded(std::move(e));
                }
                if (t.s == "{") {
                    next();
                    auto e = mk(Expr::K::DictLit, line);
                    while (!is_op("}")) {
                        if (!e->a.empty()) expect_op(",");
                        if (is_op("}")) break;
                        e->a.push_back(parse_expression(true));
                        expect_op(":");
                        e->a.push_back(parse_expression(true));
                    }
                    next();
                    return bounded(std::move(e));
                }
                break;
            default: break;
        }
        unexpected("an expression");
    }

    ExprPtr parse_postfix(ExprPtr e) {
        for (;;) {
            if (is_op(".") || is_op("[")) e = parse_subscript(std::move(e));
            else if (is_op("(")) e = parse_call(std::move(e));
            else return e;
        }
    }

    ExprPtr parse_filter_expr(ExprPtr e) {
        for (;;) {
            if (is_op("|")) {
                next();
                e = parse_filter(std::move(e));
            } else if (is_name("is")) {
                e = parse_test(std::move(e));
            } else if (is_op("(")) {
                e = parse_call(std::move(e));
            } else {
                return e;
            }
        }
    }

    ExprPtr parse_subscript(ExprPtr obj) {
        int line = cur().line;
        if (skip_op(".")) {
            if (cur().t == Token::T::Name) {
                auto e = mk(Expr::K::Attr, line);
                e->name = cur().s;
                next();
                e->a.push_back(std::move(obj));
                return bounded(std::move(e));
            }
            if (cur().t == Token::T::Int) {
                auto e = mk(Expr::K::Item, line);
                auto k = mk(Expr::K::Const, line);
                k->val = Value::integer(cur().i);
                next();
                e->a.push_back(std::move(obj));
                e->a.push_back(std::move(k));
                return bounded(std::move(e));
            }
            unexpected("an attribute name");
        }
        expect_op("[");
        std::vector<ExprPtr> args;
        while (!is_op("]")) {
            if (!args.empty()) expect_op(",");
            if (is_op("]")) break;
            args.push_back(parse_subscribed());
        }
        next();
        if (args.empty()) fail(line, "empty subscript");
        if (args.size() == 1 && args[0]->k == Expr::K::Slice) {
            ExprPtr s = std::move(args[0]);
            s->a[0] = std::move(obj);
            return bounded(std::move(s));
        }
        auto e = mk(Expr::K::Item, line);
        e->a.push_back(std::move(obj));
        if (args.size() == 1) {
            e->a.push_back(std::move(args[0]));
        } else {
            auto t = mk(Expr::K::TupleLit, line);
            for (auto& a : args) {
                if (a->k == Expr::K::Slice) fail(line, "unsupported multi-dimensional slice");
                t->a.push_back(std::move(a));
            }
            e->a.push_back(std::move(t));
        }
        return bounded(std::move(e));
    }

    ExprPtr parse_subscribed() {
        int line = cur().line;
        std::vector<ExprPtr> args;
        if (is_op(":")) {
            next();
            args.push_back(nullptr);
        } else {
            ExprPtr e = parse_expression(true);
            if (!is_op(":")) return e;
            next();
            args.push_back(std::move(e));
        }
        if (is_op(":")) args.push_back(nullptr);
        else if (!is_op("]") && !is_op(",")) args.push_back(parse_expression(true));
        else args.push_back(nullptr);
        if (is_op(":")) {
            next();
            if (!is_op("]") && !is_op(",")) args.push_back(parse_expression(true));
            else args.push_back(nullptr);
        } else {
            args.push_back(nullptr);
        }
        auto s = mk(Expr::K::Slice, line);
        s->a.push_back(nullptr);  // the object, filled in by the caller
        for (auto& a : args) s->a.push_back(std::move(a));
        return s;
    }

    // Parses `(args)` into e->a (after any existing entries) and e->kw.
    void parse_call_args(Expr& e) {
        expect_op("(");
        bool first = true;
        while (!is_op(")")) {
            if (!first) expect_op(",");
            first = false;
            if (is_op(")")) break;
            if (is_op("*") || is_op("**")) {  // *args / **kwargs, kept in kw under "*" / "**"
                std::string star = cur().s;
                next();
                e.kw.emplace_back(star, parse_expression(true));
                continue;
            }
            if (cur().t == Token::T::Name && peek().t == Token::T::Op && peek().s == "=") {
                std::string name = cur().s;
                next();
                next();
                e.kw.emplace_back(std::move(name), parse_expression(true));
            } else {
                if (!e.kw.empty()) fail(cur().line, "positional argument after keyword or *args argument");
                e.a.push_back(parse_expression(true));
            }
        }
        next();
    }

    ExprPtr parse_call(ExprPtr callee) {
        auto e = mk(Expr::K::Call, cur().line);
        e->a.push_back(std::move(callee));
        parse_call_args(*e);
        return bounded(std::move(e));
    }

    // A filter (after the '|'); `input` may be null for filter blocks and `set` blocks.
    ExprPtr parse_filter(ExprPtr input) {
        int line = cur().line;
        auto e = mk(Expr::K::Filter, line);
        e->name = expect_name();
        while (is_op(".") && peek().t == Token::T::Name) {
            next();
            e->name += "." + expect_name();
        }
        e->a.push_back(std::move(input));
        if (is_op("(")) parse_call_args(*e);
        return bounded(std::move(e));
    }

    ExprPtr parse_test(ExprPtr subject) {
        int line = cur().line;
        next();  // 'is'
        auto e = mk(Expr::K::Test, line);
        if (skip_name("not")) e->negated = true;
        e->name = expect_name();
        while (is_op(".") && peek().t == Token::T::Name) {
            next();
            e->name += "." + expect_name();
        }
        e->a.push_back(std::move(subject));
        const Token& t = cur();
        if (is_op("(")) {
            parse_call_args(*e);
        } else if ((t.t == Token::T::Name || t.t == Token::T::String || t.t == Token::T::Int ||
                    t.t == Token::T::Float || (t.t == Token::T::Op && (t.s == "[" || t.s == "{"))) &&
                   !(t.t == Token::T::Name && (t.s == "else" || t.s == "or" || t.s == "and" || t.s == "if" ||
                                               t.s == "is" || t.s == "in" || t.s == "not" || t.s == "recursive"))) {
            e->a.push_back(parse_postfix(parse_primary()));
        }
        return bounded(std::move(e));
    }

    // Records the nesting depth of a node built from already-parsed children and bounds it, so that
    // evaluating or destroying it cannot overflow the stack.
    ExprPtr bounded(ExprPtr e) {
        int d = 0;
        for (auto& c : e->a)
            if (c) d = std::max(d, c->depth);
        for (auto& c : e->kw) d = std::max(d, c.second->depth);
        int depth = d + 1;
        if (depth > opt_.max_parse_depth * 5) fail(e->line, "expression nesting too deep");
        e->depth = depth;
        return e;
    }
    std::vector<Token> t_;
    size_t p_ = 0;
    const Options& opt_;
    int depth_ = 0;
    int loop_depth_ = 0;
};

}  // namespace

std::shared_ptr<Program> parse_program(std::string_view source, const Options& opt) {
    auto prog = std::make_shared<Program>();
    prog->opt = opt;
    Parser p(tokenize(source, opt), prog->opt);
    prog->body = p.parse_template();
    return prog;
}

}  // namespace yiti::jinja::detail
