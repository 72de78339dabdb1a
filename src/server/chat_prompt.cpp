#include "server/chat_prompt.h"

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace yiti::server {

const char* const k_chatml_template =
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}";

ChatPrompt::ChatPrompt(const gguf::File& f, const Tokenizer& tok, const std::string& template_source) {
    std::string src = template_source;
    if (src.empty()) src = f.get_str("tokenizer.chat_template").value_or("");
    if (src.empty()) {
        src = k_chatml_template;
        fallback_ = true;
    }
    tmpl_ = jinja::Template::parse(src);
    if (tok.bos() >= 0) bos_ = tok.token_text(tok.bos());
    if (tok.eos() >= 0) eos_ = tok.token_text(tok.eos());
}

std::string ChatPrompt::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                               const nlohmann::ordered_json& extra_context) const {
    nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
    if (extra_context.is_object())
        for (auto it = extra_context.begin(); it != extra_context.end(); ++it) ctx[it.key()] = it.value();
    ctx["messages"] = messages;
    ctx["add_generation_prompt"] = add_generation_prompt;
    ctx["bos_token"] = bos_;
    ctx["eos_token"] = eos_;
    return tmpl_.render(ctx);
}

}  // namespace yiti::server
