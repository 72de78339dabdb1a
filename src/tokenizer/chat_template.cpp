#include "tokenizer/chat_template.h"

#include <cstdio>

#include "core/error.h"

namespace yiti {

nlohmann::ordered_json chat_context(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                    const std::string& bos_token, const std::string& eos_token,
                                    const nlohmann::ordered_json& extra) {
    nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
    ctx["messages"] = messages;
    ctx["add_generation_prompt"] = add_generation_prompt;
    ctx["bos_token"] = bos_token;
    ctx["eos_token"] = eos_token;
    if (extra.is_object())
        for (auto it = extra.begin(); it != extra.end(); ++it) ctx[it.key()] = it.value();
    return ctx;
}

ChatTemplate::ChatTemplate(const std::string& source, const jinja::Options& opt)
    : tpl_(jinja::Template::parse(source, opt)) {}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const std::string& bos_token, const std::string& eos_token,
                                 const nlohmann::ordered_json& extra) const {
    return tpl_.render(chat_context(messages, add_generation_prompt, bos_token, eos_token, extra));
}

std::string render_chat(const std::string& template_source, const nlohmann::ordered_json& messages,
                        bool add_generation_prompt, const std::string& bos_token, const std::string& eos_token,
                        const nlohmann::ordered_json& extra) {
    return ChatTemplate(template_source).render(messages, add_generation_prompt, bos_token, eos_token, extra);
}

const std::string& chatml_template() {
    static const std::string tpl =
        "{%- for message in messages -%}\n"
        "{{- '<|im_start|>' + message['role'] + '\\n' -}}\n"
        "{%- if message['content'] is string -%}\n"
        "{{- message['content'] -}}\n"
        "{%- elif message['content'] is iterable and message['content'] is not mapping -%}\n"
        "{%- for part in message['content'] -%}\n"
        "{%- if part is string -%}{{- part -}}\n"
        "{%- elif part is mapping and part['type'] == 'text' -%}{{- part['text'] -}}\n"
        "{%- endif -%}\n"
        "{%- endfor -%}\n"
        "{%- endif -%}\n"
        "{{- '<|im_end|>\\n' -}}\n"
        "{%- endfor -%}\n"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n";
    return tpl;
}

ChatRenderResult render_chat_or_chatml(const std::string& template_source, const nlohmann::ordered_json& messages,
                                       bool add_generation_prompt, const std::string& bos_token,
                                       const std::string& eos_token, const nlohmann::ordered_json& extra) {
    ChatRenderResult r;
    if (template_source.empty()) {
        r.error = "the model has no chat template";
    } else {
        try {
            r.prompt = render_chat(template_source, messages, add_generation_prompt, bos_token, eos_token, extra);
            return r;
        } catch (const Error& e) {
            r.error = e.what();
        }
    }
    fprintf(stderr, "yiti: warning: chat template not usable (%s); falling back to ChatML\n", r.error.c_str());
    r.used_chatml = true;
    r.prompt = render_chat(chatml_template(), messages, add_generation_prompt, bos_token, eos_token, extra);
    return r;
}

}  // namespace yiti
