// Chat messages to prompt text: the model's Jinja chat template (tokenizer.chat_template, or one
// given on the command line), ChatML when the model has none or its template does not parse.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.h"

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
    // Throws yiti::Error when a given template does not parse (the model's own falls back to
    // ChatML with a warning).
    ChatPrompt(const gguf::File& f, const Tokenizer& tok, const std::string& template_source = "");

    // Renders the conversation; throws yiti::Error when the template fails (e.g. raise_exception
    // for a role order it does not accept).
    std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                       const nlohmann::ordered_json& extra_context) const;

    bool is_fallback() const { return fallback_; }
    const std::string& fallback_reason() const { return why_; }
    const std::string& bos_text() const { return bos_; }

private:
    std::unique_ptr<ChatTemplate> tmpl_;
    bool fallback_ = false;
    std::string bos_, eos_, why_;
};

}  // namespace yiti::server
