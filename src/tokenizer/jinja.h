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
// "jinja: line N: ...".
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
