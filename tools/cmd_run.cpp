// yiti run: generate text from a prompt, streamed to stdout; speeds on stderr.
#include <chrono>
#include <cstdio>

#include "args.h"
#include "load.h"
#include "commands.h"
#include "core/error.h"
#include "engine/session.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace yiti::cli {

int cmd_run(int argc, char** argv) {
    std::string path, prompt;
    int64_t n_predict = 128, n_ctx = 0;
    int threads = 0;
    bool exact = false, no_display_prompt = false, ignore_eos = false;
    sample::SamplerParams sp;
    PlacementFlags pf;
    Args a("run", "-m MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] [--seed S] [-t THREADS] [--exact]");
    a.str("-m,--model", &path, "GGUF model file", "FILE");
    a.str("-p,--prompt", &prompt, "prompt text", "TEXT");
    a.integer("-n,--n-predict", &n_predict, "tokens to generate (default 128; -1: until end of text or context)", -1,
              1 << 24);
    a.integer("-c,--ctx-size", &n_ctx, "context size (default: min(training context, 4096))", 1, 1 << 24);
    a.integer("-t,--threads", &threads, "threads (default: all cores)", 1, 1024);
    a.number("--temp,--temperature", &sp.temperature, "temperature (0: greedy; default 0.8)", 0, 100);
    a.integer("--top-k", &sp.top_k, "top-k (0: off; default 40)", 0, 1 << 30);
    a.number("--top-p", &sp.top_p, "top-p (1: off; default 0.95)", 0.0001f, 1);
    a.number("--min-p", &sp.min_p, "min-p (0: off; default 0.05)", 0, 1);
    a.number("--repeat-penalty", &sp.repeat_penalty, "repetition penalty (1: off)", 0.01f, 10);
    a.integer("--repeat-last-n", &sp.repeat_last_n, "history the penalties look at (default 64, -1: all)", -1, 1 << 30);
    a.number("--presence-penalty", &sp.presence_penalty, "presence penalty (0: off)", -2, 2);
    a.number("--frequency-penalty", &sp.frequency_penalty, "frequency penalty (0: off)", -2, 2);
    a.u64("--seed", &sp.seed, "random seed (default: random)");
    a.flag("--exact", &exact, "F32 activations, dequantized weights, F32 KV cache");
    a.flag("--no-display-prompt", &no_display_prompt, "print only the generated text");
    a.flag("--ignore-eos", &ignore_eos, "keep generating after the end-of-text token");
    add_placement_flags(a, &pf);
    a.examples("  yiti run -m model.gguf -p \"Once upon a time\" -n 32 --temp 0\n"
               "  yiti run -m model.gguf -p \"Hello\" --temp 0.7 --top-p 0.9 --seed 42\n");
    if (!a.parse(argc, argv)) return a.exit_code();
    if (path.empty()) throw Error("missing -m MODEL");
    if (!a.given("-p") && !a.given("--prompt")) throw Error("missing -p PROMPT");

    std::shared_ptr<model::Model> m = load_model("run", path, pf);
    auto tok = Tokenizer::from_gguf(m->file());
    std::vector<int32_t> tokens = tok->encode(prompt, true, false);
    if (tokens.empty()) throw Error("the prompt has no tokens (and the model adds no BOS)");
    engine::SessionOptions so;
    so.exact = exact;
    so.n_threads = threads;
    so.n_ctx = n_ctx;
    engine::Session s(m, so);
    if ((int64_t)tokens.size() >= s.n_ctx())
        throw Error(strprintf("the prompt has %zu tokens, the context only %lld", tokens.size(), (long long)s.n_ctx()));
    sample::Sampler sampler(sp, s.n_vocab());

    if (!no_display_prompt) {
        fputs(prompt.c_str(), stdout);
        fflush(stdout);
    }
    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    std::vector<float> logits = s.eval(tokens);
    auto t1 = clock::now();
    const size_t n_prompt = tokens.size();

    StreamDecoder dec(*tok, false, /*continuation=*/!prompt.empty());  // the output continues the prompt
    int64_t n_gen = 0;
    const int64_t limit = n_predict < 0 ? s.n_ctx() - (int64_t)n_prompt : n_predict;
    while (n_gen < limit) {
        int32_t id = sampler.sample(logits.data(), tokens);
        tokens.push_back(id);
        ++n_gen;
        if (!ignore_eos && tok->is_eog(id)) break;
        std::string piece = dec.push(id);
        fwrite(piece.data(), 1, piece.size(), stdout);
        fflush(stdout);
        if (n_gen >= limit || s.n_past() >= s.n_ctx()) break;
        logits = s.eval({id});
    }
    std::string rest = dec.flush();
    fwrite(rest.data(), 1, rest.size(), stdout);
    printf("\n");
    fflush(stdout);
    auto t2 = clock::now();
    const double pp_s = std::chrono::duration<double>(t1 - t0).count();
    const double tg_s = std::chrono::duration<double>(t2 - t1).count();
    fprintf(stderr, "\nprompt: %zu tokens in %.3f s (%.2f tokens/s); generation: %lld tokens in %.3f s (%.2f tokens/s)\n",
            n_prompt, pp_s, n_prompt / std::max(pp_s, 1e-9), (long long)n_gen, tg_s,
            n_gen > 0 ? n_gen / std::max(tg_s, 1e-9) : 0.0);
    return 0;
}

}  // namespace yiti::cli
