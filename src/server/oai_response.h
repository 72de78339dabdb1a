// OpenAI-compatible response objects: chat.completion, chat.completion.chunk, text_completion,
// usage and logprobs, as JSON.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "server/generation.h"
#include "server/oai_request.h"

namespace yiti {
class Tokenizer;
}

namespace yiti::server {

struct Usage {
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    int64_t cached_tokens = 0;
};
json usage_json(const Usage& u);

// A choice's accumulated output (non-streaming answers).
struct ChoiceResult {
    std::string content, reasoning;
    std::vector<TokenLogprob> logprobs;
    std::string finish_reason;
    std::string error;
    int64_t n_generated = 0;
    int64_t n_cached = 0;
    bool finished = false;
};

class ResponseBuilder {
public:
    enum class Kind { Chat, Completion };
    ResponseBuilder(Kind kind, const Tokenizer& tok, std::string model, bool logprobs, int top_logprobs);

    const std::string& id() const { return id_; }
    int64_t created() const { return created_; }

    // Whole answers.
    json chat_completion(const std::vector<ChoiceResult>& choices, const Usage& u) const;
    json text_completion(const std::vector<ChoiceResult>& choices, const Usage& u,
                         const std::vector<std::string>& echo_prefix) const;

    // Streaming chunks (with "usage": null when include_usage, as OpenAI does).
    json chat_role_chunk(int index) const;
    json chat_delta_chunk(int index, const std::string& content, const std::string& reasoning,
                          const std::vector<TokenLogprob>& lp) const;
    json chat_finish_chunk(int index, const std::string& finish_reason) const;
    json text_chunk(int index, const std::string& text, const std::vector<TokenLogprob>& lp, size_t offset_base,
                    const char* finish_reason) const;
    json usage_chunk(const Usage& u) const;
    void set_include_usage(bool v) { include_usage_ = v; }

    // Logprobs in the chat format {"content": [...]} or the completion format
    // {"tokens", "token_logprobs", "top_logprobs", "text_offset"}.
    json chat_logprobs(const std::vector<TokenLogprob>& lp) const;
    json completion_logprobs(const std::vector<TokenLogprob>& lp, size_t offset_base) const;

    // The wire form of a finish reason ("cancelled" and "error" never reach clients as such).
    static const char* wire_finish_reason(const std::string& r);

private:
    json chunk_base(const char* object) const;
    Kind kind_;
    const Tokenizer& tok_;
    std::string model_;
    bool logprobs_;
    int top_logprobs_;
    bool include_usage_ = false;
    std::string id_;
    int64_t created_;
};

std::string random_hex(size_t n);

}  // namespace yiti::server
