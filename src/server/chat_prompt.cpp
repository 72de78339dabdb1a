#include "server/chat_prompt.h"

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace yiti::server {

ChatPrompt::ChatPrompt(const gguf::File& f, const Tokenizer& tok, const std::string& template_source) {
    if (tok.bos() >= 0) bos_ = tok.token_text(tok.bos());
    if (tok.eos() >= 0) eos_ = tok.token_text(tok.eos());
    if (!template_source.empty()) {
        tmpl_ = std::make_unique<ChatTemplate>(template_source);
        return;
    }
    const std::string src = f.get_str("tokenizer.chat_template").value_or("");
    if (!src.empty()) {
        try {
            tmpl_ = std::make_unique<ChatTemplate>(src);
            return;
        } catch (const Error& e) {
            why_ = std::string("the model's chat template does not parse: ") + e.what();
        }
    } else {
        why_ = "the model has no chat template";
    }
    fallback_ = true;
    tmpl_ = std::make_unique<ChatTemplate>(chatml_template());
}

std::string ChatPrompt::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                               const nlohmann::ordered_json& extra_context) const {
    return tmpl_->render(messages, add_generation_prompt, bos_, eos_,
                         extra_context.is_object() ? extra_context : nlohmann::ordered_json::object());
}

}  // namespace yiti::server
