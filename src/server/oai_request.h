// OpenAI-compatible request bodies: parsing and validation of /v1/chat/completions and
// /v1/completions, and the error object every failure is reported with.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sample/sampler.h"

namespace yiti::server {

using json = nlohmann::ordered_json;

// An error answered to the client: HTTP status and OpenAI's error object
// {"error": {"message", "type", "param", "code"}}.
struct ApiError : std::runtime_error {
    int status;
    std::string type;   // "invalid_request_error", "authentication_error", "server_error", ...
    std::string param;  // the offending parameter, "" for none
    std::string code;   // machine-readable, "" for none
    ApiError(int status, std::string message, std::string param = "", std::string code = "",
             std::string type = "");
};
json error_object(const ApiError& e);
std::string error_body(const ApiError& e);  // serialized error_object()
// The error type OpenAI uses for a status (400 -> invalid_request_error, 401 ->
// authentication_error, 5xx -> server_error, ...).
const char* error_type_for_status(int status);

// Serializes JSON for the wire; invalid UTF-8 in strings becomes U+FFFD instead of throwing.
std::string dump(const json& j);

// The deepest nesting of arrays and objects in a JSON text (strings skipped), counting stops
// once it passes `limit`.
size_t json_nesting_depth(std::string_view text, size_t limit);

// Parses a request body: 400 for malformed JSON (numbers out of range included), for nesting
// deeper than `max_depth` (0: unchecked) and for a body that is not a JSON object.
json parse_body(const std::string& body, int max_depth = 128);

// response_format: free text, any JSON object, or JSON valid against a schema.
struct ResponseFormat {
    enum class Type { Text, JsonObject, JsonSchema };
    Type type = Type::Text;
    std::string name;          // json_schema.name ("" when absent)
    json schema;               // json_schema.schema (also json_object's "schema", an extension); null: none
    bool strict = false;       // json_schema.strict (the grammar always enforces the schema)
};

// Settings shared by both endpoints.
struct GenParams {
    std::string model;                 // as requested ("" when absent)
    sample::SamplerParams sampling;    // OpenAI defaults: temperature 1, top_p 1, no top-k / min-p
    int64_t max_tokens = -1;           // -1: up to the end of the context
    std::vector<std::string> stop;
    int n = 1;                         // choices per prompt
    bool stream = false;
    bool include_usage = false;        // stream_options.include_usage
    bool logprobs = false;
    int top_logprobs = 0;
    bool ignore_eos = false;           // extension: keep going after end-of-generation tokens
    bool seed_given = false;
    ResponseFormat response_format;
};

struct ChatMessage {
    std::string role;
    std::string content;            // text parts joined
    bool content_null = false;      // "content": null (assistant messages with tool calls)
    std::string reasoning_content;  // an assistant's earlier reasoning, when sent back
};

struct ChatRequest {
    GenParams p;
    std::vector<ChatMessage> messages;
    json raw_messages;              // as sent (for templates that look at more fields)
    bool add_generation_prompt = true;
    json template_kwargs = json::object();  // extension: chat_template_kwargs
};

// One prompt of a completion request: text, or token ids.
struct PromptInput {
    bool is_tokens = false;
    std::string text;
    std::vector<int32_t> tokens;
};

struct CompletionRequest {
    GenParams p;
    std::vector<PromptInput> prompts;
    bool echo = false;
};

// Limits the parser checks against.
struct RequestLimits {
    int max_n = 8;              // choices per request
    int max_prompts = 8;        // prompts per completion request
    int max_stop = 16;          // stop strings
    int max_top_logprobs = 20;
    int64_t n_vocab = 0;        // token ids in prompts must be below (0: not checked)
    int max_json_depth = 128;   // nesting of arrays and objects in a request body
};

// Throw ApiError (400) naming the parameter when something is missing, of the wrong type or out
// of range.
ChatRequest parse_chat_request(const json& body, const RequestLimits& lim);
CompletionRequest parse_completion_request(const json& body, const RequestLimits& lim);

}  // namespace yiti::server
