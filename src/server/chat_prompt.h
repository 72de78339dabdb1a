// Chat messages to prompt text: the model's Jinja chat template (tokenizer.chat_template, or one
// given on the command line), ChatML when the model has none.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/jinja.h"

namespace yiti {
class Tokenizer;
namespace gguf {
class File;
}
}  // namespace yiti

namespace yiti::server {

class ChatPrompt {
public:
    // template_source: a template to use instead of the model's ("" for the model's own).
    // Throws yiti::Error when the template does not parse.
    ChatPrompt(const gguf::File& f, const Tokenizer& tok, const std::string& template_source = "");

    // Renders the conversation; throws yiti::Error when the template fails (e.g. raise_exception
    // for a role order it does not accept).
    std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                       const nlohmann::ordered_json& extra_context) const;

    bool is_fallback() const { return fallback_; }
    const std::string& bos_text() const { return bos_; }

private:
    jinja::Template tmpl_;
    bool fallback_ = false;
    std::string bos_, eos_;
};

// The ChatML template used when a model has none.
extern const char* const k_chatml_template;

}  // namespace yiti::server
