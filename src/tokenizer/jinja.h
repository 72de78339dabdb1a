// A Jinja template interpreter for the chat templates stored in GGUF files.
//
// It implements the subset of Jinja2 that real chat templates use, with the semantics of Python
// Jinja2 as configured by Hugging Face's apply_chat_template: trim_blocks and lstrip_blocks on,
// the loopcontrols extension (break/continue), a `tojson` filter that behaves like
// json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...), and the globals
// raise_exception(msg), strftime_now(fmt), range, namespace, dict. Values print the way Python
// prints them (True/False/None, ['a', 1], 1.0, ...). Undefined values behave like Jinja2's default
// Undefined: they print as "", iterate as empty, test false, but attribute access, indexing,
// calling and arithmetic on them raise an error.
//
// Everything that goes wrong (syntax errors, unsupported filters/tests/statements, type errors,
// raise_exception, runaway recursion or output) throws yiti::Error with a message of the form
// "jinja: line N: ...". An unknown filter or test fails when it is evaluated (as in Jinja2 3.x),
// so one in a branch that never runs is harmless.
//
// Supported: if/elif/else, for (loop.*, else, `if` filter, unpacking, recursive, break/continue),
// set (names, tuples, ns.attr, block set with filters), macro/call/caller, filter blocks, with,
// raw, do, Hugging Face's {% generation %} (renders its body); the whole expression language
// including *args/**kwargs; Jinja2's builtin tests; the builtin filters except those listed below;
// the common str/list/dict methods. Strings index by code point; Markup strings from |safe and
// |escape escape the plain operand of `+` as in Jinja2.
//
// Not supported (a clear error): extends/block/include/import/from/autoescape/trans statements;
// the filters groupby, slice, xmlattr, urlize, urlencode, wordwrap, striptags, filesizeformat,
// pprint, random. Known differences from Python: upper/lower/title map case only for Latin,
// Greek and Cyrillic; filters that return generators in Jinja2 (map, select, reject,
// selectattr, rejectattr, unique, items, batch, reverse) return values that are always true and
// have no length, like generators, but can be iterated more than once; |items on a non-mapping
// fails at once; list/dict mutating methods (append, pop, update, ...) work, where Hugging
// Face's immutable sandbox refuses them.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace yiti::jinja {

struct Options {
    bool trim_blocks = true;             // remove the first newline after a block tag
    bool lstrip_blocks = true;           // strip spaces/tabs before a block tag at line start
    bool keep_trailing_newline = false;  // keep a single trailing newline of the source
    // Runaway protection.
    size_t max_output_bytes = 64u << 20;     // rendered output (and any single string value)
    int max_call_depth = 200;                // nested macro / recursive loop calls
    int max_parse_depth = 200;               // nesting of expressions and statements
    size_t max_loop_iterations = 10000000;   // loop iterations over one render, all loops together
};

namespace detail {
struct Program;
}

class Template {
public:
    // Parses `source`; throws yiti::Error ("jinja: line N: ...") on a syntax error or a statement
    // that is not supported.
    static Template parse(std::string_view source, const Options& opt = {});

    // Renders with the variables of `context` (a JSON object; other JSON values give no
    // variables). Throws yiti::Error on a rendering error.
    std::string render(const nlohmann::ordered_json& context) const;

private:
    std::shared_ptr<const detail::Program> prog_;
};

}  // namespace yiti::jinja
