// Chat prompts from a model's Jinja chat template (see tokenizer/jinja.h), with a ChatML fallback.
//
// The context a template sees is what Hugging Face's apply_chat_template passes: `messages` (a JSON
// array of {"role", "content", ...} objects, used as given), `add_generation_prompt`, `bos_token`,
// `eos_token`, plus every key of `extra` (for example "tools", "enable_thinking",
// "reasoning_effort"), which may also override the former.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/jinja.h"

namespace yiti {

// Parses and renders `template_source`; throws yiti::Error ("jinja: line N: ...") on failure.
std::string render_chat(const std::string& template_source, const nlohmann::ordered_json& messages,
                        bool add_generation_prompt, const std::string& bos_token, const std::string& eos_token,
                        const nlohmann::ordered_json& extra = {});

// The plain ChatML template: "<|im_start|>{role}\n{content}<|im_end|>\n" per message, then
// "<|im_start|>assistant\n" when a generation prompt is asked for. Content given as a list of
// parts contributes its text parts; other message fields (tool calls, ...) are ignored.
const std::string& chatml_template();

struct ChatRenderResult {
    std::string prompt;
    bool used_chatml = false;  // true when the model's template was missing or failed
    std::string error;         // why it was not used (empty when it was)
};

// Renders with `template_source`; when it is empty, does not parse, or fails to render, logs a
// warning naming the problem to stderr and renders with chatml_template() instead. Throws only
// when ChatML fails too (malformed messages).
ChatRenderResult render_chat_or_chatml(const std::string& template_source, const nlohmann::ordered_json& messages,
                                       bool add_generation_prompt, const std::string& bos_token,
                                       const std::string& eos_token, const nlohmann::ordered_json& extra = {});

// A template parsed once and rendered many times (a server keeps one per model).
class ChatTemplate {
public:
    explicit ChatTemplate(const std::string& source, const jinja::Options& opt = {});  // throws yiti::Error
    std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                       const std::string& bos_token, const std::string& eos_token,
                       const nlohmann::ordered_json& extra = {}) const;

private:
    jinja::Template tpl_;
};

// The context object a chat template is rendered with.
nlohmann::ordered_json chat_context(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                    const std::string& bos_token, const std::string& eos_token,
                                    const nlohmann::ordered_json& extra = {});

}  // namespace yiti
