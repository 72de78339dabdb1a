// yiti template: renders a chat template with a JSON context, as Hugging Face's apply_chat_template.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/jinja.h"
#include "tokenizer/tokenizer.h"

namespace yiti::cli {

std::string read_text_file(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(strprintf("cannot open %s '%s'", what, path.c_str()));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

int cmd_template(int argc, char** argv) {
    std::string model, tpl_path, ctx_path;
    Args a("template", "(-m MODEL | --template FILE.jinja) --context CONTEXT.json");
    a.str("-m,--model", &model, "take the template from this model's tokenizer.chat_template", "FILE");
    a.str("--template", &tpl_path, "a Jinja chat template file", "FILE");
    a.str("--context", &ctx_path, "JSON object: messages, add_generation_prompt, bos_token, eos_token, tools, ...",
          "FILE");
    a.examples("  yiti template --template chat.jinja --context ctx.json\n"
               "  yiti template -m model.gguf --context ctx.json\n");
    if (!a.parse(argc, argv)) return a.exit_code();
    if (model.empty() == tpl_path.empty()) throw Error("give exactly one of -m MODEL and --template FILE");
    if (ctx_path.empty()) throw Error("missing --context FILE");
    nlohmann::ordered_json ctx;
    try {
        ctx = nlohmann::ordered_json::parse(read_text_file(ctx_path, "context file"));
    } catch (const nlohmann::json::exception& e) {
        throw Error(strprintf("context file '%s' is not valid JSON: %s", ctx_path.c_str(), e.what()));
    }
    if (!ctx.is_object()) throw Error(strprintf("context file '%s' must hold a JSON object", ctx_path.c_str()));
    std::string source;
    if (!tpl_path.empty()) {
        source = read_text_file(tpl_path, "template");
    } else {
        auto f = gguf::File::open(model);
        auto t = f->get_str("tokenizer.chat_template");
        if (!t) throw Error(strprintf("model '%s' has no tokenizer.chat_template", model.c_str()));
        source = *t;
        // The model's own BOS/EOS texts, unless the context gives them.
        auto tok = Tokenizer::from_gguf(*f);
        if (!ctx.contains("bos_token") && tok->bos() >= 0) ctx["bos_token"] = tok->token_text(tok->bos());
        if (!ctx.contains("eos_token") && tok->eos() >= 0) ctx["eos_token"] = tok->token_text(tok->eos());
    }
    jinja::Template tpl = jinja::Template::parse(source);
    std::string out = tpl.render(ctx);
    fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

}  // namespace yiti::cli
