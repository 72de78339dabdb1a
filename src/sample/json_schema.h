// JSON Schema to grammar (sample/grammar.h): the grammar accepts JSON text that validates against
// the schema. It may accept less than the schema allows (listed below) but never more.
//
//   auto g = json_schema_grammar(nlohmann::ordered_json::parse(schema_text));  // throws SchemaError
//   Matcher m(g, vocab);
//
// Supported:
//   type (a name or a list of names: object, array, string, number, integer, boolean, null;
//     without type, the kind is inferred from the other keywords, else any JSON value), nullable,
//   enum, const (any JSON values, written compactly),
//   objects: properties (emitted in schema order; required ones always, optional ones may be left
//     out), required (a required name without a property schema takes any value),
//     additionalProperties: false / true / a schema. When it is absent, an object with properties
//     gets no extra keys, and an object without properties is any JSON object. Extra keys never
//     repeat a listed property name and come after the listed properties,
//   arrays: items (a schema, or false after prefixItems), prefixItems, minItems, maxItems,
//     uniqueItems: false,
//   strings: minLength, maxLength (in characters; an escape counts as one), pattern, format (date,
//     time, date-time, uuid, email, ipv4). Pattern is a regex subset: literals and escapes (\n \t
//     \r \f \v \xHH \uHHHH and escaped punctuation), classes [...] [^...] with ranges and \d \w \s
//     \D \W \S, `.` (any character but a line break), groups (...) (?:...) (?<name>...),
//     alternation |, ?, *, +, {m}, {m,}, {m,n} (lazy forms taken as greedy), ^ at the start and $
//     at the end of a top-level branch (without them the match may be surrounded by any text).
//     Strings from pattern and format contain no control characters; `"` and `\` are written
//     escaped,
//   integer with minimum / maximum / exclusiveMinimum / exclusiveMaximum (exact digit-range
//     grammars), number with those bounds only when the bound is 0 (non-negative, positive, ...),
//   anyOf, oneOf (as anyOf: a value may match several branches), allOf with one schema,
//   $ref to #, #/$defs/..., #/definitions/... or any JSON pointer into the schema (recursion
//     allowed); annotations (title, description, default, examples, $schema, $id, $comment,
//     deprecated, readOnly, writeOnly, $defs, definitions) are ignored.
// Anything else (not, if/then/else, patternProperties, minProperties, multipleOf, uniqueItems:
// true, other formats, external $ref, a number bound other than 0, pattern with minLength, ...) is
// a SchemaError naming the keyword and the JSON pointer of the schema that holds it.
//
// Bounds that keep a model from running forever: whitespace between tokens is at most one space,
// or a newline followed by up to max_indent spaces/tabs; integers have at most max_int_digits
// digits, numbers at most max_int_digits before the point, max_frac_digits after it and 3 in the
// exponent. Whitespace is also allowed before and after the whole document.
#pragma once
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "sample/grammar.h"

namespace yiti::sample {

class SchemaError : public GrammarError {
public:
    SchemaError(std::string keyword, std::string path, const std::string& msg)
        : GrammarError(msg), keyword_(std::move(keyword)), path_(std::move(path)) {}
    const std::string& keyword() const { return keyword_; }  // e.g. "uniqueItems"
    const std::string& path() const { return path_; }        // e.g. "#/properties/tags"

private:
    std::string keyword_, path_;
};

struct JsonSchemaOptions {
    int max_indent = 20;
    int max_int_digits = 19;
    int max_frac_digits = 20;
};

// Builds rules for one or more schemas into one rule set, so that they can be combined with other
// rules (e.g. a tool call wrapper): each add() returns the name of a rule for a JSON value (no
// whitespace around it). Rule names start with `prefix`.
class JsonSchemaCompiler {
public:
    explicit JsonSchemaCompiler(JsonSchemaOptions o = {}, std::string prefix = "");
    ~JsonSchemaCompiler();
    std::string add(const nlohmann::ordered_json& schema, const std::string& name);
    std::string add_any_object();  // any JSON object
    std::string add_any_value();   // any JSON value
    // Bounded optional whitespace, as used between tokens.
    GExprPtr ws() const;
    std::map<std::string, GExprPtr>& rules();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// A grammar for a whole document: optional whitespace, a value valid against the schema, optional
// whitespace. Throws SchemaError.
std::shared_ptr<const Grammar> json_schema_grammar(const nlohmann::ordered_json& schema, const JsonSchemaOptions& o = {});
// response_format {"type": "json_object"}: any JSON object.
std::shared_ptr<const Grammar> json_object_grammar(const JsonSchemaOptions& o = {});

// The regex subset above as an expression over a string's characters (not JSON-escaped), with
// JSON Schema's search semantics (unanchored branches may be surrounded by any text). Throws
// SchemaError with keyword "pattern".
GExprPtr regex_to_expr(std::string_view pattern, const std::string& path = "#");

}  // namespace yiti::sample
