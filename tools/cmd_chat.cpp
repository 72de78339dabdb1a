// yiti chat: an interactive conversation in the terminal. Each turn renders the whole conversation
// with the model's chat template and reuses the cached prefix, so only the new part is computed.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "args.h"
#include "load.h"
#include "commands.h"
#include "core/error.h"
#include "engine/session.h"
#include "sample/sampler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/reasoning.h"
#include "tokenizer/tokenizer.h"

namespace yiti::cli {

std::string read_text_file(const std::string& path, const char* what);  // cmd_template.cpp

namespace {

struct ChatState {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    std::vector<int32_t> tokens;  // what the session's cache holds
};

}  // namespace

int cmd_chat(int argc, char** argv) {
    std::string path, system_prompt, tpl_path;
    int64_t n_predict = 1024, n_ctx = 0;
    int threads = 0;
    bool exact = false, no_color = false;
    sample::SamplerParams sp;
    sp.temperature = 0.7f;
    PlacementFlags pf;
    Args a("chat", "-m MODEL [--system TEXT] [--chat-template FILE] [-n N] [--temp T] [--seed S] [-t THREADS]");
    a.str("-m,--model", &path, "GGUF model file", "FILE");
    a.str("--system", &system_prompt, "system message", "TEXT");
    a.str("--chat-template", &tpl_path, "Jinja chat template file (default: the model's own)", "FILE");
    a.integer("-n,--n-predict", &n_predict, "most tokens per answer (default 1024)", 1, 1 << 24);
    a.integer("-c,--ctx-size", &n_ctx, "context size (default: min(training context, 4096))", 1, 1 << 24);
    a.integer("-t,--threads", &threads, "threads (default: all cores)", 1, 1024);
    a.number("--temp,--temperature", &sp.temperature, "temperature (0: greedy; default 0.7)", 0, 100);
    a.integer("--top-k", &sp.top_k, "top-k (0: off; default 40)", 0, 1 << 30);
    a.number("--top-p", &sp.top_p, "top-p (1: off; default 0.95)", 0.0001f, 1);
    a.number("--min-p", &sp.min_p, "min-p (0: off; default 0.05)", 0, 1);
    a.number("--repeat-penalty", &sp.repeat_penalty, "repetition penalty (1: off)", 0.01f, 10);
    a.u64("--seed", &sp.seed, "random seed (default: random)");
    a.flag("--exact", &exact, "F32 activations, dequantized weights, F32 KV cache");
    a.flag("--no-color", &no_color, "do not dim the reasoning part");
    add_placement_flags(a, &pf);
    a.examples("  yiti chat -m model.gguf\n  yiti chat -m model.gguf --system \"You are terse.\" --temp 0\n"
               "\nIn the chat: /reset starts over, /exit (or end of input) quits.\n");
    if (!a.parse(argc, argv)) return a.exit_code();
    if (path.empty()) throw Error("missing -m MODEL");

    std::shared_ptr<model::Model> m = load_model("chat", path, pf);
    auto tok = Tokenizer::from_gguf(m->file());
    std::string tpl_source = tpl_path.empty() ? m->file().get_str("tokenizer.chat_template").value_or("")
                                              : read_text_file(tpl_path, "chat template");
    const std::string bos = tok->bos() >= 0 ? tok->token_text(tok->bos()) : "";
    const std::string eos = tok->eos() >= 0 ? tok->token_text(tok->eos()) : "";
    engine::SessionOptions so;
    so.exact = exact;
    so.n_threads = threads;
    so.n_ctx = n_ctx;
    engine::Session s(m, so);
    sample::Sampler sampler(sp, s.n_vocab());
    const bool tty_in = isatty(0), tty_out = isatty(1);
    const bool dim = tty_out && !no_color;

    ChatState st;
    auto reset = [&] {
        st.messages = nlohmann::ordered_json::array();
        if (!system_prompt.empty()) st.messages.push_back({{"role", "system"}, {"content", system_prompt}});
        st.tokens.clear();
        s.truncate(0);
    };
    reset();
    bool warned_template = false;
    if (tty_in) fprintf(stderr, "yiti chat: %s — /reset starts over, /exit quits\n", m->hparams().name.c_str());

    std::string line;
    for (;;) {
        if (tty_in) fputs("\n> ", stderr);
        if (!std::getline(std::cin, line)) break;
        if (line == "/exit" || line == "/quit") break;
        if (line == "/reset") {
            reset();
            printf("[conversation reset]\n");
            fflush(stdout);
            continue;
        }
        if (line.empty()) continue;
        st.messages.push_back({{"role", "user"}, {"content", line}});
        ChatRenderResult r = render_chat_or_chatml(warned_template ? "" : tpl_source, st.messages, true, bos, eos);
        if (r.used_chatml && !tpl_source.empty()) warned_template = true;
        // Special tokens in the rendered prompt are real markers; BOS comes from the template text
        // when it writes one.
        const bool template_has_bos = !bos.empty() && r.prompt.rfind(bos, 0) == 0;
        std::vector<int32_t> prompt = tok->encode(r.prompt, !template_has_bos, true);
        // Reuse the cached prefix.
        size_t common = 0;
        while (common < prompt.size() && common < st.tokens.size() && prompt[common] == st.tokens[common]) ++common;
        if (common == prompt.size()) --common;  // something must be evaluated for fresh logits
        if ((int64_t)prompt.size() + 1 >= s.n_ctx()) {
            printf("[the conversation no longer fits the context of %lld tokens; /reset to start over]\n",
                   (long long)s.n_ctx());
            st.messages.erase(st.messages.end() - 1);
            continue;
        }
        s.truncate((int64_t)common);
        st.tokens.assign(prompt.begin(), prompt.begin() + (ptrdiff_t)common);
        std::vector<int32_t> rest(prompt.begin() + (ptrdiff_t)common, prompt.end());
        std::vector<float> logits = s.eval(rest);
        st.tokens.insert(st.tokens.end(), rest.begin(), rest.end());

        ReasoningSplitter split(prompt_ends_in_reasoning(r.prompt));
        StreamDecoder dec(*tok);
        std::string answer;
        bool in_dim = false;
        auto show = [&](const ReasoningSplitter::Delta& d) {
            if (!d.reasoning.empty()) {
                if (dim && !in_dim) fputs("\x1b[2m", stdout), in_dim = true;
                fputs(d.reasoning.c_str(), stdout);
            }
            if (!d.content.empty()) {
                if (in_dim) fputs("\x1b[0m\n", stdout), in_dim = false;
                fputs(d.content.c_str(), stdout);
                answer += d.content;
            }
            fflush(stdout);
        };
        for (int64_t n = 0; n < n_predict; ++n) {
            const int32_t id = sampler.sample(logits.data(), st.tokens);
            if (tok->is_eog(id)) break;
            show(split.push(dec.push(id)));
            if (s.n_past() + 1 >= s.n_ctx()) break;
            logits = s.eval({id});
            st.tokens.push_back(id);
        }
        show(split.push(dec.flush()));
        show(split.finish());
        if (in_dim) fputs("\x1b[0m", stdout);
        printf("\n");
        fflush(stdout);
        st.messages.push_back({{"role", "assistant"}, {"content", answer}});
    }
    return 0;
}

}  // namespace yiti::cli
