// Tests of the Jinja interpreter (tokenizer/jinja.h), chat template rendering
// (tokenizer/chat_template.h) and the reasoning splitter (tokenizer/reasoning.h).
//
// The renders.json cases in ${YITI_SHARED_DIR}/templates were rendered by Python Jinja2 set up like
// Hugging Face's apply_chat_template; every one must match byte for byte. The other expected
// strings are written from Jinja2's documented semantics.
#include <gtest/gtest.h>

#include <pthread.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/jinja.h"
#include "tokenizer/reasoning.h"

using nlohmann::ordered_json;
using yiti::jinja::Options;
using yiti::jinja::Template;

namespace {

const std::string kTemplatesDir = std::string(YITI_SHARED_DIR) + "/templates";

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return {};
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

ordered_json load_renders() {
    std::string text = read_file(kTemplatesDir + "/renders.json");
    if (text.empty()) return ordered_json::array();
    return ordered_json::parse(text);
}

const ordered_json& renders() {
    static const ordered_json cases = load_renders();
    return cases;
}

std::string R(const std::string& tpl, const ordered_json& ctx = ordered_json::object(), const Options& opt = {}) {
    return Template::parse(tpl, opt).render(ctx);
}

// The message of the yiti::Error that rendering throws ("" when it does not throw).
std::string E(const std::string& tpl, const ordered_json& ctx = ordered_json::object(), const Options& opt = {}) {
    try {
        Template::parse(tpl, opt).render(ctx);
    } catch (const yiti::Error& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// --- renders.json: one test per case ---------------------------------------------------------

class JinjaRenders : public ::testing::TestWithParam<size_t> {};

TEST_P(JinjaRenders, MatchesJinja2) {
    const ordered_json& c = renders().at(GetParam());
    std::string name = c.at("template").get<std::string>();
    std::string source = read_file(kTemplatesDir + "/" + name);
    ASSERT_FALSE(source.empty()) << "cannot read " << kTemplatesDir << "/" << name;
    std::string got = Template::parse(source).render(c.at("context"));
    EXPECT_EQ(got, c.at("expected").get<std::string>()) << name << " / " << c.at("case").get<std::string>();
}

std::vector<size_t> render_indices() {
    std::vector<size_t> v;
    for (size_t i = 0; i < renders().size(); ++i) v.push_back(i);
    return v;
}

std::string render_name(const ::testing::TestParamInfo<size_t>& info) {
    const ordered_json& c = renders().at(info.param);
    std::string raw = c.at("template").get<std::string>() + "_" + c.at("case").get<std::string>();
    bool agp = c.at("context").value("add_generation_prompt", false);
    raw += agp ? "_gen" : "_nogen";
    std::string name;
    for (char ch : raw) name += (isalnum((unsigned char)ch) ? ch : '_');
    return name + "_" + std::to_string(info.param);
}

INSTANTIATE_TEST_SUITE_P(Shared, JinjaRenders, ::testing::ValuesIn(render_indices()), render_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(JinjaRenders);

TEST(JinjaRendersData, Present) {
    ASSERT_GE(renders().size(), 30u) << "renders.json missing or short in " << kTemplatesDir;
    for (const auto& c : renders()) {
        EXPECT_TRUE(c.contains("template") && c.contains("case") && c.contains("context") && c.contains("expected"));
    }
}

// --- whitespace control ----------------------------------------------------------------------

TEST(JinjaWhitespace, TrimAndLstripBlocks) {
    EXPECT_EQ(R("  {% if true %}\n  x\n  {% endif %}\n  y"), "  x\n  y");
    // lstrip_blocks never applies to {{ }}, and only when the tag starts its line.
    EXPECT_EQ(R("  {{ 1 }}  {% if true %}  a {% endif %}"), "  1    a ");
    EXPECT_EQ(R("a\n\t {% if true %}x{% endif %}"), "a\nx");
    // The first newline after a block or comment tag goes, not the one after {{ }}.
    EXPECT_EQ(R("{% if true %}\n\n{% endif %}"), "\n");
    EXPECT_EQ(R("{{ 1 }}\n{{ 2 }}"), "1\n2");
    EXPECT_EQ(R("a {# c #}\nb\n  {# c #}\nd"), "a b\nd");
}

TEST(JinjaWhitespace, DashAndPlusModifiers) {
    EXPECT_EQ(R("a {%- if true -%} b {%- endif -%} c"), "abc");
    EXPECT_EQ(R("a\n{{- 1 -}}\nb"), "a1b");
    EXPECT_EQ(R("a  {%+ if true %}b{% endif +%}\nc"), "a  b\nc");
    EXPECT_EQ(R("a{%- if true %}\n  b {{ 'c' }}\n{% endif -%}\n\nz"), "a  b c\nz");
    EXPECT_EQ(R("x\n   {% for i in [1, 2] %}\n     {{ i }}\n   {% endfor %}"), "x\n     1\n     2\n");
}

TEST(JinjaWhitespace, TrailingNewlineAndCrLf) {
    EXPECT_EQ(R("t\n"), "t");
    EXPECT_EQ(R("t\n\n"), "t\n");
    Options keep;
    keep.keep_trailing_newline = true;
    EXPECT_EQ(R("t\n", {}, keep), "t\n");
    EXPECT_EQ(R("a\r\nb\rc{% if 1 %}\r\nx{% endif %}"), "a\nb\ncx");
}

TEST(JinjaWhitespace, OptionsOff) {
    Options plain;
    plain.trim_blocks = false;
    plain.lstrip_blocks = false;
    EXPECT_EQ(R("  {% if true %}\n  x\n  {% endif %}\n", {}, plain), "  \n  x\n  ");
}

TEST(JinjaSyntax, RawBlocksAndComments) {
    EXPECT_EQ(R("{% raw %}\n  {{ x }} {% if %}\n{% endraw %}\ne"), "\n  {{ x }} {% if %}\ne");
    EXPECT_EQ(R("  {%- raw -%}  {{ x }}  {%- endraw %}  \ne"), "{{ x }}  \ne");
    EXPECT_EQ(R("{# {{ x }} {% if %} #}ok"), "ok");
}

// --- expressions -----------------------------------------------------------------------------

TEST(JinjaExpr, LiteralsPrintLikePython) {
    EXPECT_EQ(R("{{ [1, 'a', none, true, 1.5, (1,), {'k': 'v'}] }}"), "[1, 'a', None, True, 1.5, (1,), {'k': 'v'}]");
    EXPECT_EQ(R("{{ True }} {{ False }} {{ None }} {{ () }} {{ (1, 2) }}"), "True False None () (1, 2)");
    EXPECT_EQ(R("{{ [\"it's\", 'a\"b', \"x\\ny\"] }}"), "[\"it's\", 'a\"b', 'x\\ny']");
    EXPECT_EQ(R("{{ '\\t|\\x41|\\u00e9|\\101|\\\\' }}"), "\t|A|\xc3\xa9|A|\\");
    EXPECT_EQ(R("{{ 'a' 'b' \"c\" }}"), "abc");
    EXPECT_EQ(R("{{ 1_000 }} {{ 0x1f }} {{ 0b101 }} {{ 1e3 }} {{ 2.5e-3 }}"), "1000 31 5 1000.0 0.0025");
}

TEST(JinjaExpr, FloatsPrintLikePython) {
    EXPECT_EQ(R("{{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1/3 }}"),
              "1e+16 1000000000000000.0 0.0001 1e-05 0.3333333333333333");
    EXPECT_EQ(R("{{ 0.1 + 0.2 }} {{ -0.0 }} {{ 3 * 1.5 }} {{ 1e300 * 1e10 }} {{ 10 / 4 }}"),
              "0.30000000000000004 -0.0 4.5 inf 2.5");
}

TEST(JinjaExpr, Arithmetic) {
    EXPECT_EQ(R("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}"), "3 -4 2 -2 1024 0.5");
    // Jinja2's ** is left-associative and unary minus binds tighter than it.
    EXPECT_EQ(R("{{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }}"), "64 4 5");
    EXPECT_EQ(R("{{ 'ab' * 3 }} {{ [1] * 2 }} {{ 1 + true }} {{ 3 // 0.5 }} {{ 7.5 % 2 }}"), "ababab [1, 1] 2 6.0 1.5");
    EXPECT_EQ(R("{{ 'a' ~ 1.0 ~ none ~ true ~ undefined_var }}"), "a1.0NoneTrue");
    EXPECT_EQ(R("{{ [1, 2] + [3] }} {{ 'a' + 'b' }}"), "[1, 2, 3] ab");
}

TEST(JinjaExpr, ComparisonsAndLogic) {
    EXPECT_EQ(R("{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 'b' > 'a' }} {{ [1, 2] < [1, 3] }}"), "True False True True");
    EXPECT_EQ(R("{{ 1 == 1.0 }} {{ 1 in [1.0] }} {{ 'a' in 'cat' }} {{ 'a' in {'a': 1} }} {{ 3 not in [1] }}"),
              "True True True True True");
    EXPECT_EQ(R("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ [] and 1 }} {{ not 1 == 2 }}"), "x y [] True");
    EXPECT_EQ(R("{{ 'ab' if false }}|{{ 'x' if true else 'y' }}|{{ 1 if false else 2 if false else 3 }}"), "|x|3");
}

TEST(JinjaExpr, AttributesSubscriptsSlices) {
    ordered_json ctx = {{"d", {{"a", 1}, {"b", {1, "x"}}}}, {"xs", {1, 2, 3}}, {"s", "h\xc3\xa9llo"}};
    EXPECT_EQ(R("{{ d.a }} {{ d['b'][1] }} {{ d.b.1 }} {{ xs.0 }} {{ xs[-1] }}", ctx), "1 x x 1 3");
    EXPECT_EQ(R("{{ xs[1:] }} {{ xs[::-1] }} {{ xs[:-1] }} {{ xs[-5:100] }} {{ (1, 2, 3)[:2] }}", ctx),
              "[2, 3] [3, 2, 1] [1, 2] [1, 2, 3] (1, 2)");
    // Strings index and slice by code point.
    EXPECT_EQ(R("{{ s|length }} {{ s[1:3] }} {{ s[::-1] }} {{ s[1] }}", ctx), "5 \xc3\xa9l oll\xc3\xa9h \xc3\xa9");
    // Missing attributes and out-of-range items are undefined.
    EXPECT_EQ(R("{{ d.zz is defined }} {{ xs[5] is defined }} {{ d.zz }}", ctx), "False False ");
    // obj.name looks for a method first, obj['name'] for an item first.
    ctx["m"] = {{"items", {1, 2}}};
    EXPECT_EQ(R("{{ m['items'] }} {{ m.items is callable }} {{ m.items()|list }}", ctx), "[1, 2] True [('items', [1, 2])]");
}

TEST(JinjaExpr, UndefinedSemantics) {
    EXPECT_EQ(R("[{{ nope }}]"), "[]");
    EXPECT_EQ(R("{{ nope is defined }} {{ nope is undefined }} {{ nope|length }} {{ 'a' in nope }} {{ nope == nope }}"),
              "False True 0 False True");
    EXPECT_EQ(R("{% for x in nope %}a{% else %}empty{% endfor %}"), "empty");
    EXPECT_EQ(R("{{ nope|default('d') }} {{ none|default('d') }} {{ ''|default('d', true) }} {{ nope|d('e') }}"),
              "d None d e");
    // Jinja2 raises on attribute access, arithmetic and calls on undefined values.
    EXPECT_TRUE(contains(E("{{ nope.x }}"), "'nope' is undefined"));
    EXPECT_TRUE(contains(E("{{ d.zz.yy }}", {{"d", ordered_json::object()}}), "'dict object' has no attribute 'zz'"));
    EXPECT_TRUE(contains(E("{{ nope + 1 }}"), "'nope' is undefined"));
    EXPECT_TRUE(contains(E("{{ nope() }}"), "'nope' is undefined"));
}

TEST(JinjaExpr, StringMethods) {
    EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}"),
              "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c'] ['a,b', 'c']");
    EXPECT_EQ(R("{{ '  xx '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '\\nab\\n'.lstrip('\\n') }}|{{ 'ab  '.rstrip() }}|"),
              "xx|hi|ab\n|ab|");
    EXPECT_EQ(R("{{ 'Hello World'.upper() }} {{ 'Hello'.lower() }} {{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }}"),
              "HELLO WORLD hello Hello World Hello");
    EXPECT_EQ(R("{{ 'abc'.startswith(('x', 'a')) }} {{ 'abc'.endswith('bc') }} {{ 'abcabc'.count('b') }} {{ 'abc'.find('c') }} "
                "{{ 'abc'.find('z') }}"),
              "True True 2 2 -1");
    EXPECT_EQ(R("{{ 'aaa'.replace('a', 'b', 2) }} {{ 'a'.replace('', '-') }} {{ '-'.join(['a', 'b']) }}"), "bba -a- a-b");
    EXPECT_EQ(R("{{ '{} and {x}'.format(1, x=2) }} {{ '{:>4}|{:.2f}'.format('a', 3.14159) }}"), "1 and 2    a|3.14");
    EXPECT_EQ(R("{{ '%s-%05.1f|%d%%' % ('a', 3.14159, 7) }}"), "a-003.1|7%");
    // The qwen3 template's reasoning extraction.
    ordered_json ctx = {{"c", "<think>\nhmm\n</think>\n\nAnswer"}};
    EXPECT_EQ(R("[{{ c.split('</think>')[-1].lstrip('\\n') }}][{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}]",
                ctx),
              "[Answer][hmm]");
}

TEST(JinjaExpr, DictAndListMethods) {
    ordered_json ctx = {{"d", {{"a", 1}, {"b", 2}}}};
    EXPECT_EQ(R("{{ d.keys()|list }} {{ d.values()|list }} {{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 9) }}", ctx),
              "['a', 'b'] [1, 2] 1 None 9");
    EXPECT_EQ(R("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", ctx), "a=1;b=2;");
    EXPECT_EQ(R("{% set xs = [1] %}{% set _ = xs.append(2) %}{{ xs }} {{ xs.pop() }} {{ xs }}"), "[1, 2] 2 [1]");
}

TEST(JinjaExpr, Tests) {
    EXPECT_EQ(R("{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }}"), "True True True False");
    EXPECT_EQ(R("{{ none is none }} {{ 1 is number }} {{ true is number }} {{ 1 is integer }} {{ 1.0 is float }} "
                "{{ true is boolean }} {{ true is true }} {{ 0 is false }}"),
              "True True True True True True True False");
    EXPECT_EQ(R("{{ 'a' is string }} {{ {} is mapping }} {{ [] is sequence }} {{ 'a' is iterable }} {{ 1 is iterable }}"),
              "True True True True False");
    EXPECT_EQ(R("{{ 1 is eq 1 }} {{ 1 is equalto 2 }} {{ 2 is gt 1 }} {{ 1 is in [1, 2] }} {{ 'ab' is lower }} "
                "{{ x is not defined }}"),
              "True False True True True True");
}

TEST(JinjaExpr, Filters) {
    EXPECT_EQ(R("{{ [3, 1, 2]|sort }} {{ ['b', 'A', 'a']|sort }} {{ ['b', 'A', 'a']|unique|list }} {{ [1, 2]|reverse|list }} "
                "{{ 'abc'|reverse }}"),
              "[1, 2, 3] ['A', 'a', 'b'] ['b', 'A'] [2, 1] cba");
    EXPECT_EQ(R("{{ [{'a': 2}, {'a': 1}]|map(attribute='a')|list }} {{ [{'a': 2}, {'a': 1}]|selectattr('a', 'equalto', 1)|list }} "
                "{{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3]|reject('gt', 1)|list }} {{ ['a']|map('upper')|list }}"),
              "[2, 1] [{'a': 1}] [1, 3] [1] ['A']");
    EXPECT_EQ(R("{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ 5|round }} {{ -3|abs }}"),
              "2.0 4.0 2.67 3.0 5 3");
    EXPECT_EQ(R("{{ '42'|int }} {{ '4.5'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ '3'|float }} {{ 3.9|int }} {{ 4|string ~ 'x' }}"),
              "42 4 0 7 3.0 3 4x");
    EXPECT_EQ(R("{{ [1, 2]|join(',') }} {{ [1, 2]|first }} {{ []|first is defined }} {{ 'abc'|last }} {{ [1, 2, 3]|sum }} "
                "{{ [1, 5, 2]|max }} {{ [4, 2]|min }} {{ [1, 2]|length }} {{ [1, 2]|count }}"),
              "1,2 1 False c 6 5 2 2 2");
    EXPECT_EQ(R("{{ {'b': 1, 'a': 2}|dictsort }} {{ {'b': 1}|items|list }} {{ 'ab'|list }}"),
              "[('a', 2), ('b', 1)] [('b', 1)] ['a', 'b']");
    EXPECT_EQ(R("{{ '  a  '|trim }}|{{ '--a--'|trim('-') }}|{{ 'abc'|upper }}|{{ 'ABC'|lower }}|{{ 'hello-world foo'|title }}|"
                "{{ 'hELLO'|capitalize }}|{{ 'abc'|replace('b', 'B') }}|{{ 'a<b>&'|e }}|{{ '<a>'|safe }}"),
              "a|a|ABC|abc|Hello-World Foo|Hello|aBc|a&lt;b&gt;&amp;|<a>");
    EXPECT_EQ(R("{{ 'x\\ny\\n'|indent(2) }}|{{ 'x\\ny'|indent(2, true) }}|{{ 'x\\n\\nz'|indent(2, blank=true) }}"),
              "x\n  y\n|  x\n  y|x\n  \n  z");
    EXPECT_EQ(R("{{ 'a b  c'|wordcount }} {{ 'Hello'|center(9) }}| {{ [1, 2, 3]|batch(2)|list }}"), "3   Hello  | [[1, 2], [3]]");
}

TEST(JinjaExpr, PythonObjectQuirks) {
    // Markup ("safe") strings escape the plain operand of `+` (functionary templates rely on it).
    EXPECT_EQ(R("{{ ('<a>'|safe) + '<b>' }} {{ '<b>' + ('<a>'|safe) }} {{ ('<a>'|safe) ~ '<b>' }} {{ 'x'|e|e }}"),
              "<a>&lt;b&gt; &lt;b&gt;<a> <a><b> x");
    // map/select/... return generators in Jinja2: always true, no len().
    EXPECT_EQ(R("{% if [1]|select('even') %}T{% endif %}{% if [1]|select('even')|list %}L{% endif %}"), "T");
    EXPECT_TRUE(contains(E("{{ [1]|map('string')|length }}"), "has no len()"));
    EXPECT_EQ(R("{% macro m(a, b) %}{{ a }}{{ b }}{% endmacro %}{{ m(*[1, 2]) }} {{ m(**{'a': 3, 'b': 4}) }}"), "12 34");
    EXPECT_EQ(R("{{ '%s' % [1] }} {{ '%s|%s' % (1, 'a') }} {{ '%(x)s' % {'x': 2} }}"), "[1] 1|a 2");
    // Whitespace control strips Unicode whitespace too, as Python's str.rstrip and \s do.
    EXPECT_EQ(R("a\xc2\xa0\xe3\x80\x80 {%- if true %}x{% endif %}"), "ax");
}

TEST(JinjaExpr, ToJsonLikeHuggingFace) {
    ordered_json ctx = {{"d", {{"b", 1}, {"a", {1, 2.5, nullptr, true, "\xc3\xa9\"\n"}}}}};
    // Key order is kept, separators are ", " and ": ", non-ASCII is not escaped.
    EXPECT_EQ(R("{{ d|tojson }}", ctx), "{\"b\": 1, \"a\": [1, 2.5, null, true, \"\xc3\xa9\\\"\\n\"]}");
    EXPECT_EQ(R("{{ d|tojson(indent=2) }}", ctx),
              "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    2.5,\n    null,\n    true,\n    \"\xc3\xa9\\\"\\n\"\n  ]\n}");
    EXPECT_EQ(R("{{ {'a': {}, 'b': []}|tojson(indent='\\t') }}"), "{\n\t\"a\": {},\n\t\"b\": []\n}");
    EXPECT_EQ(R("{{ [1, 2]|tojson(separators=(',', ':')) }} {{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}"),
              "[1,2] {\"a\": 2, \"b\": 1}");
    EXPECT_EQ(R("{{ '\xc3\xa9\\u0001'|tojson(ensure_ascii=true) }} {{ '\\u0001\\u007f'|tojson }}"),
              "\"\\u00e9\\u0001\" \"\\u0001\x7f\"");
}

// --- statements ------------------------------------------------------------------------------

TEST(JinjaStmt, LoopVariables) {
    EXPECT_EQ(R("{% for x in [1, 2, 3] if x > 1 %}{{ loop.index }}/{{ loop.length }} {{ loop.index0 }} {{ loop.first }} "
                "{{ loop.last }} {{ loop.revindex }} {{ loop.previtem }} {{ loop.nextitem }};{% endfor %}"),
              "1/2 0 True False 2  3;2/2 1 False True 1 2 ;");
    EXPECT_EQ(R("{% for x in 'ab' %}{{ loop.cycle('o', 'e') }}{{ x }}{% endfor %}"), "oaeb");
    EXPECT_EQ(R("{% for a, b in [(1, 2), (3, 4)] %}{{ a * b }},{% endfor %}"), "2,12,");
    EXPECT_EQ(R("{% for x in [] %}x{% else %}none{% endfor %}"), "none");
    EXPECT_EQ(R("{% for i in [1, 2, 3, 4] %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}"
                "{{ i }}{% endfor %}"),
              "13");
    EXPECT_EQ(R("{% for x in [1, [2, [3]]] recursive %}{% if x is iterable %}({{ loop(x) }}){% else %}{{ x }}@{{ loop.depth }}"
                "{% endif %}{% endfor %}"),
              "1@1(2@2(3@3))");
    EXPECT_EQ(R("{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}"), "ab");
}

TEST(JinjaStmt, ScopingLikeJinja2) {
    // A loop iteration's assignments stay in that iteration; `if` has no scope of its own.
    EXPECT_EQ(R("{% for i in range(3) %}{% if i == 0 %}{% set x = 5 %}{% endif %}{{ x }},{% endfor %}"), "5,,,");
    EXPECT_EQ(R("{% set x = 1 %}{% for i in range(2) %}{{ x }}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}"), "12121");
    EXPECT_EQ(R("{% if true %}{% set y = 3 %}{% endif %}{{ y }}"), "3");
    // namespace() carries values out of loops.
    EXPECT_EQ(R("{% set ns = namespace(n=0, found=false) %}{% for i in range(5) %}{% set ns.n = ns.n + i %}{% endfor %}"
                "{{ ns.n }} {{ ns.found }}"),
              "10 False");
    EXPECT_EQ(R("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
    EXPECT_EQ(R("{% set x %}  block {{ 1 }} {% endset %}[{{ x }}]"), "[  block 1 ]");
    EXPECT_EQ(R("{% set x | upper %}abc{% endset %}{{ x }}"), "ABC");
    EXPECT_EQ(R("{% with a = 1 %}{{ a }}{% endwith %}{{ a is defined }}"), "1False");
}

TEST(JinjaStmt, Macros) {
    EXPECT_EQ(R("{% macro m(a, b=2) %}{{ a }}-{{ b }}-{{ varargs }}-{{ kwargs }}{% endmacro %}{{ m(1) }} {{ m(1, 3, 4, k=5) }} "
                "{{ m(b=7, a=0) }}"),
              "1-2-()-{} 1-3-(4,)-{'k': 5} 0-7-()-{}");
    EXPECT_EQ(R("{% macro m() %}[{{ caller('z') }}]{% endmacro %}{% call(v) m() %}in {{ v }}{% endcall %}"), "[in z]");
    // Macros see the template's variables as they are when called.
    EXPECT_EQ(R("{% set z = 3 %}{% macro m() %}{{ z }}{% endmacro %}{% set z = 4 %}{{ m() }}"), "4");
    EXPECT_EQ(R("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}"), "321");
    EXPECT_EQ(R("{% filter upper %}abc{% endfilter %}"), "ABC");
}

TEST(JinjaStmt, Globals) {
    EXPECT_EQ(R("{{ range(3)|list }} {{ range(2, 8, 3)|list }} {{ range(3, 0, -1)|list }}"), "[0, 1, 2] [2, 5] [3, 2, 1]");
    EXPECT_EQ(R("{{ dict(a=1, b=2) }} {{ namespace(a=1).a }}"), "{'a': 1, 'b': 2} 1");
    std::string year = R("{{ strftime_now('%Y') }}");
    EXPECT_EQ(year.size(), 4u);
    EXPECT_TRUE(year >= "2024" && year <= "2200") << year;
}

// --- errors ----------------------------------------------------------------------------------

TEST(JinjaErrors, UnsupportedFilterNamesConstructAndLine) {
    std::string msg = E("line one\n{{ 'x' }}\n{{ d|xmlattr }}", {{"d", ordered_json::object()}});
    EXPECT_TRUE(contains(msg, "line 3")) << msg;
    EXPECT_TRUE(contains(msg, "unsupported filter 'xmlattr'")) << msg;
    msg = E("\n\n{% if x is frobnicated %}{% endif %}");
    EXPECT_TRUE(contains(msg, "line 3") && contains(msg, "unsupported test 'frobnicated'")) << msg;
    msg = E("a\n{% include 'other.jinja' %}");
    EXPECT_TRUE(contains(msg, "line 2") && contains(msg, "unsupported statement 'include'")) << msg;
    msg = E("{% frob %}");
    EXPECT_TRUE(contains(msg, "unknown statement 'frob'")) << msg;
    // Unsupported filters in branches that do not run do not fail (as in Jinja2 3.x).
    EXPECT_EQ(R("{% if false %}{{ x|xmlattr }}{% endif %}ok"), "ok");
}

TEST(JinjaErrors, SyntaxErrorsNameTheLine) {
    std::string msg = E("{% for m in messages %}\n{{ m }}\n");
    EXPECT_TRUE(contains(msg, "line 1") && contains(msg, "unterminated 'for'") && contains(msg, "endfor")) << msg;
    msg = E("a\n{% if x %}b{% else %}c\n");
    EXPECT_TRUE(contains(msg, "line 2") && contains(msg, "unterminated 'if'")) << msg;
    msg = E("\n{{ 'abc }}");
    EXPECT_TRUE(contains(msg, "line 2") && contains(msg, "unterminated string")) << msg;
    msg = E("\n\n{{ 1 + }}");
    EXPECT_TRUE(contains(msg, "line 3") && contains(msg, "unexpected")) << msg;
    msg = E("x {{ a");
    EXPECT_TRUE(contains(msg, "line 1") && contains(msg, "unterminated '{{'")) << msg;
    msg = E("{% endif %}");
    EXPECT_TRUE(contains(msg, "unexpected 'endif'")) << msg;
    msg = E("{% break %}");
    EXPECT_TRUE(contains(msg, "'break' outside of a loop")) << msg;
    msg = E("{# never closed");
    EXPECT_TRUE(contains(msg, "unterminated comment")) << msg;
    EXPECT_THROW(Template::parse("{% if %}{% endif %}"), yiti::Error);
    EXPECT_THROW(Template::parse("{{ (1, 2 }}"), yiti::Error);
}

TEST(JinjaErrors, RaiseExceptionPropagates) {
    std::string msg = E("{% if messages[0].role == 'system' %}\n{{ raise_exception('System role not supported') }}{% endif %}",
                        {{"messages", {{{"role", "system"}, {"content", "x"}}}}});
    EXPECT_TRUE(contains(msg, "System role not supported")) << msg;
    EXPECT_TRUE(contains(msg, "line 2")) << msg;
}

TEST(JinjaErrors, TypeErrors) {
    EXPECT_TRUE(contains(E("{{ 'a' + 1 }}"), "unsupported operand type(s) for +: 'str' and 'int'"));
    EXPECT_TRUE(contains(E("{{ 1 / 0 }}"), "division by zero"));
    EXPECT_TRUE(contains(E("{% for x in 5 %}{% endfor %}"), "'int' object is not iterable"));
    EXPECT_TRUE(contains(E("{% set x = 1 %}{% set x.a = 2 %}"), "not a namespace"));
    EXPECT_TRUE(contains(E("{{ nope|tojson }}"), "not JSON serializable"));
}

TEST(JinjaErrors, RunawayProtection) {
    // Unbounded recursion stops with an error instead of overflowing the stack.
    std::string msg = E("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
    EXPECT_TRUE(contains(msg, "maximum call depth")) << msg;
    // Output size.
    Options small;
    small.max_output_bytes = 1000;
    msg = E("{% for i in range(1000) %}0123456789{% endfor %}", {}, small);
    EXPECT_TRUE(contains(msg, "output exceeds")) << msg;
    msg = E("{{ 'x' * 100000 }}", {}, small);
    EXPECT_TRUE(contains(msg, "exceeds")) << msg;
    msg = E("{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", {}, small);
    EXPECT_TRUE(contains(msg, "exceeds")) << msg;
    // Loop iterations, and ranges beyond Jinja2's sandbox limit.
    Options few;
    few.max_loop_iterations = 1000;
    msg = E("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", {}, few);
    EXPECT_TRUE(contains(msg, "too many loop iterations")) << msg;
    EXPECT_TRUE(contains(E("{{ range(1000000000)|length }}"), "range too big"));
    // Deep nesting in the source.
    msg = E("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}");
    EXPECT_TRUE(contains(msg, "too deep")) << msg;
    std::string chain = "{{ 1";
    for (int i = 0; i < 5000; ++i) chain += " + 1";
    msg = E(chain + " }}");
    EXPECT_TRUE(contains(msg, "too deep")) << msg;
    std::string nested;
    for (int i = 0; i < 1000; ++i) nested += "{% if true %}";
    msg = E(nested);
    EXPECT_TRUE(contains(msg, "too deep")) << msg;
    // Self-referencing lists print without recursing forever.
    EXPECT_NO_THROW(R("{% set a = [] %}{% set _ = a.append(a) %}{{ a|length }}{{ a }}"));
    EXPECT_TRUE(contains(E("{% set a = [] %}{% set _ = a.append(a) %}{{ a|tojson }}"), "too deeply"));
    // Reference cycles are released when the render ends (no leak under LeakSanitizer).
    EXPECT_EQ(R("{% set ns = namespace() %}{% set ns.me = ns %}{% set d = {} %}{% set _ = d.update({'get': d.get}) %}ok"), "ok");
}

TEST(JinjaErrors, DeepRecursionOnASmallStack) {
    // A thread with a small stack gets an error, not a crash, however deep a template recurses.
    struct Job {
        std::string msg;
        static void* run(void* p) {
            auto* job = static_cast<Job*>(p);
            Options opt;
            opt.max_call_depth = 100000;
            job->msg = E("{% macro f(n) %}{% if n > 0 %}{% for i in [1] %}{{ f(n - 1) }}{% endfor %}{% endif %}"
                         "{% endmacro %}{{ f(100000) }}",
                         {}, opt);
            return nullptr;
        }
    } job;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512u << 10);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, &attr, &Job::run, &job), 0);
    pthread_join(th, nullptr);
    pthread_attr_destroy(&attr);
    EXPECT_TRUE(contains(job.msg, "too deep")) << job.msg;
}

// --- chat templates --------------------------------------------------------------------------

ordered_json simple_messages() {
    return ordered_json::array({{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi!"}}});
}

TEST(ChatTemplate, RenderChatMatchesSharedReference) {
    // Every renders.json case again, through render_chat with the context split into its parts.
    size_t n = 0;
    for (const auto& c : renders()) {
        std::string source = read_file(kTemplatesDir + "/" + c.at("template").get<std::string>());
        const ordered_json& ctx = c.at("context");
        ordered_json extra = ordered_json::object();
        for (auto it = ctx.begin(); it != ctx.end(); ++it)
            if (it.key() != "messages" && it.key() != "add_generation_prompt" && it.key() != "bos_token" &&
                it.key() != "eos_token")
                extra[it.key()] = it.value();
        std::string got = yiti::render_chat(source, ctx.at("messages"), ctx.value("add_generation_prompt", false),
                                            ctx.value("bos_token", ""), ctx.value("eos_token", ""), extra);
        EXPECT_EQ(got, c.at("expected").get<std::string>()) << c.at("template") << " / " << c.at("case");
        ++n;
    }
    EXPECT_GE(n, 30u);
}

TEST(ChatTemplate, ChatmlTemplateMatchesReferenceChatml) {
    size_t n = 0;
    for (const auto& c : renders()) {
        if (c.at("template") != "chatml.jinja") continue;
        const ordered_json& ctx = c.at("context");
        std::string got = yiti::render_chat(yiti::chatml_template(), ctx.at("messages"), ctx.value("add_generation_prompt", false),
                                            "", "");
        EXPECT_EQ(got, c.at("expected").get<std::string>()) << c.at("case");
        ++n;
    }
    EXPECT_GE(n, 1u);
    EXPECT_EQ(yiti::render_chat(yiti::chatml_template(), simple_messages(), true, "", ""),
              "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
    // Content given as parts, and content null (tool calls), do not break the fallback.
    ordered_json parts = ordered_json::array(
        {{{"role", "user"}, {"content", ordered_json::array({{{"type", "text"}, {"text", "a"}}, {{"type", "image"}}, {{"type", "text"}, {"text", "b"}}})}},
         {{"role", "assistant"}, {"content", nullptr}}});
    EXPECT_EQ(yiti::render_chat(yiti::chatml_template(), parts, false, "", ""),
              "<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n");
}

TEST(ChatTemplate, FallsBackToChatmlOnError) {
    std::string expected = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n";
    auto r = yiti::render_chat_or_chatml("{% for m in messages %}{{ m|xmlattr }}{% endfor %}", simple_messages(), true, "<s>", "</s>");
    EXPECT_TRUE(r.used_chatml);
    EXPECT_TRUE(contains(r.error, "unsupported filter 'xmlattr'")) << r.error;
    EXPECT_EQ(r.prompt, expected);
    r = yiti::render_chat_or_chatml("{% if true %}never closed", simple_messages(), true, "", "");
    EXPECT_TRUE(r.used_chatml);
    EXPECT_TRUE(contains(r.error, "unterminated 'if'")) << r.error;
    EXPECT_EQ(r.prompt, expected);
    r = yiti::render_chat_or_chatml("", simple_messages(), true, "", "");
    EXPECT_TRUE(r.used_chatml);
    EXPECT_EQ(r.prompt, expected);
    r = yiti::render_chat_or_chatml("{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}",
                                    simple_messages(), true, "<s>", "</s>");
    EXPECT_FALSE(r.used_chatml);
    EXPECT_TRUE(r.error.empty());
    EXPECT_EQ(r.prompt, "<s>[system]Be brief.[user]Hi!");
}

TEST(ChatTemplate, ExtraVariablesReachTheTemplate) {
    std::string qwen3 = read_file(kTemplatesDir + "/qwen3.jinja");
    ASSERT_FALSE(qwen3.empty());
    ordered_json msgs = ordered_json::array({{{"role", "user"}, {"content", "2+2?"}}});
    EXPECT_EQ(yiti::render_chat(qwen3, msgs, true, "", "<|im_end|>", {{"enable_thinking", false}}),
              "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
    EXPECT_EQ(yiti::render_chat(qwen3, msgs, true, "", "<|im_end|>"), "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
    yiti::ChatTemplate tpl(qwen3);
    EXPECT_EQ(tpl.render(msgs, false, "", "<|im_end|>"), "<|im_start|>user\n2+2?<|im_end|>\n");
    EXPECT_THROW(yiti::ChatTemplate("{% for %}"), yiti::Error);
}

// --- reasoning splitter ----------------------------------------------------------------------

using yiti::ReasoningSplitter;

struct Split {
    std::string reasoning, content;
};

Split run_chunks(const std::vector<std::string>& chunks, bool start, bool trim = true) {
    ReasoningSplitter s(start, "<think>", "</think>", trim);
    Split out;
    for (const auto& c : chunks) {
        auto d = s.push(c);
        out.reasoning += d.reasoning;
        out.content += d.content;
    }
    auto d = s.finish();
    out.reasoning += d.reasoning;
    out.content += d.content;
    return out;
}

struct ReasoningCase {
    std::string text;
    bool start_in_reasoning;
    bool trim;
    std::string reasoning, content;
};

const std::vector<ReasoningCase>& reasoning_cases() {
    static const std::vector<ReasoningCase> cases = {
        // Qwen3 style: the model opens the block itself.
        {"<think>\nLet me add.\n</think>\n\n2+2 = 4.", false, true, "Let me add.", "2+2 = 4."},
        {"<think>\nLet me add.\n</think>\n\n2+2 = 4.", false, false, "\nLet me add.\n", "\n\n2+2 = 4."},
        // DeepSeek-R1 style: the prompt opened the block.
        {"Thinking...\n</think>\n\nAnswer", true, true, "Thinking...", "Answer"},
        {"Thinking...\n</think>\n\nAnswer", true, false, "Thinking...\n", "\n\nAnswer"},
        // No reasoning at all.
        {"Just an answer.", false, true, "", "Just an answer."},
        {"  Just an answer.\n", false, true, "", "  Just an answer.\n"},
        // Empty thinking (enable_thinking=false echoes).
        {"<think>\n\n</think>\n\nHi", false, true, "", "Hi"},
        // Tags mentioned inside the answer are text.
        {"Use <think> tags like </think> this.", false, true, "", "Use <think> tags like </think> this."},
        {"<think>a</think>b <think>c</think>", false, true, "a", "b <think>c</think>"},
        // Two blocks back to back.
        {"<think>a</think>\n<think>b</think>c", false, true, "ab", "c"},
        // Cut off while thinking, or in the middle of a tag.
        {"<think>\nstill going", false, true, "still going", ""},
        {"<think>\nstill going\n</thi", false, true, "still going\n</thi", ""},
        {"answer <thi", false, true, "", "answer <thi"},
        {"<thi", false, true, "", "<thi"},
        {"", true, true, "", ""},
        // Multi-byte text and whitespace inside reasoning is kept.
        {"<think>\xe6\x80\x9d\xe8\x80\x83  \n\n  more</think>\xe7\xad\x94", false, true,
         "\xe6\x80\x9d\xe8\x80\x83  \n\n  more", "\xe7\xad\x94"},
        {"<<think>x</think>", false, true, "", "<<think>x</think>"},
        {"</think></think>x", true, true, "", "</think>x"},
        // The prompt opened the block but the model opens it again.
        {"<think>\nx\n</think>\n\nA", true, true, "x", "A"},
        {"\n<think>\nx\n</think>\n\nA", true, false, "\n\nx\n", "\n\nA"},
        {"x <think> y</think>A", true, false, "x <think> y", "A"},
    };
    return cases;
}

TEST(ReasoningSplitter, WholeText) {
    for (const auto& c : reasoning_cases()) {
        Split s = run_chunks({c.text}, c.start_in_reasoning, c.trim);
        EXPECT_EQ(s.reasoning, c.reasoning) << c.text;
        EXPECT_EQ(s.content, c.content) << c.text;
        auto d = ReasoningSplitter::split(c.text, c.start_in_reasoning, "<think>", "</think>", c.trim);
        EXPECT_EQ(d.reasoning, c.reasoning);
        EXPECT_EQ(d.content, c.content);
    }
}

TEST(ReasoningSplitter, EveryByteBoundary) {
    for (const auto& c : reasoning_cases()) {
        const std::string& t = c.text;
        for (size_t i = 0; i <= t.size(); ++i) {
            Split s = run_chunks({t.substr(0, i), t.substr(i)}, c.start_in_reasoning, c.trim);
            EXPECT_EQ(s.reasoning, c.reasoning) << t << " split at " << i;
            EXPECT_EQ(s.content, c.content) << t << " split at " << i;
        }
        for (size_t i = 0; i <= t.size(); ++i) {
            for (size_t j = i; j <= t.size(); ++j) {
                Split s = run_chunks({t.substr(0, i), t.substr(i, j - i), t.substr(j)}, c.start_in_reasoning, c.trim);
                ASSERT_EQ(s.reasoning, c.reasoning) << t << " split at " << i << "," << j;
                ASSERT_EQ(s.content, c.content) << t << " split at " << i << "," << j;
            }
        }
        std::vector<std::string> bytes;
        for (char ch : t) bytes.push_back(std::string(1, ch));
        Split s = run_chunks(bytes, c.start_in_reasoning, c.trim);
        EXPECT_EQ(s.reasoning, c.reasoning) << t << " byte by byte";
        EXPECT_EQ(s.content, c.content) << t << " byte by byte";
    }
}

TEST(ReasoningSplitter, HoldsBackOnlyPossibleTags) {
    ReasoningSplitter s(true);
    auto d = s.push("abc </th");
    EXPECT_EQ(d.reasoning, "abc");  // the space and "</th" wait for the next chunk
    EXPECT_TRUE(s.in_reasoning());
    d = s.push("ink>Answer");
    EXPECT_EQ(d.reasoning, "");
    EXPECT_EQ(d.content, "Answer");
    EXPECT_FALSE(s.in_reasoning());
    d = s.push(" more");
    EXPECT_EQ(d.content, " more");
    EXPECT_TRUE(s.finish().empty());

    ReasoningSplitter c(false);
    d = c.push("Hello");  // not a tag prefix: released at once
    EXPECT_EQ(d.content, "Hello");
    EXPECT_FALSE(c.saw_reasoning());
}

TEST(ReasoningSplitter, CustomTags) {
    auto d = ReasoningSplitter::split("[R]why[/R]what", false, "[R]", "[/R]");
    EXPECT_EQ(d.reasoning, "why");
    EXPECT_EQ(d.content, "what");
}

TEST(ReasoningSplitter, PromptEndsInReasoning) {
    EXPECT_TRUE(yiti::prompt_ends_in_reasoning("<\xef\xbd\x9c" "Assistant\xef\xbd\x9c><think>\n"));
    EXPECT_FALSE(yiti::prompt_ends_in_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    EXPECT_FALSE(yiti::prompt_ends_in_reasoning("<|im_start|>assistant\n"));
    EXPECT_TRUE(yiti::prompt_ends_in_reasoning("<think>a</think> <think>"));
}

}  // namespace
