// yiti logits: float32 little-endian logits [n_tokens][n_vocab] of one batched forward pass.
#include <cstdio>
#include <sstream>

#include "args.h"
#include "load.h"
#include "commands.h"
#include "core/error.h"
#include "engine/session.h"
#include "tokenizer/tokenizer.h"

namespace yiti::cli {

std::vector<int32_t> parse_token_list(const std::string& s) {
    std::vector<int32_t> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
        if (b == std::string::npos) throw Error(strprintf("--tokens: empty item in '%s'", s.c_str()));
        item = item.substr(b, e - b + 1);
        char* end = nullptr;
        errno = 0;
        long v = strtol(item.c_str(), &end, 10);
        if (errno || *end || v < 0 || v > INT32_MAX)
            throw Error(strprintf("--tokens: '%s' is not a token id", item.c_str()));
        out.push_back((int32_t)v);
    }
    if (out.empty()) throw Error("--tokens: no token ids given");
    return out;
}

int cmd_logits(int argc, char** argv) {
    std::string path, tokens_arg, prompt, out_path;
    bool exact = false, prompt_given = false;
    int threads = 0;
    PlacementFlags pf;
    Args a("logits", "-m MODEL (--tokens 1,2,3 | -p PROMPT) --out FILE [--exact] [-t THREADS]");
    a.str("-m,--model", &path, "GGUF model file", "FILE");
    a.str("--tokens", &tokens_arg, "comma-separated token ids, used exactly as given (BOS included if listed)", "IDS");
    a.str("-p,--prompt", &prompt, "prompt text (tokenized with the model's BOS rule)", "TEXT");
    a.str("-o,--out", &out_path, "output file: float32 little-endian [n_tokens][n_vocab]", "FILE");
    a.flag("--exact", &exact, "F32 activations, dequantized weights, F32 KV cache");
    a.integer("-t,--threads", &threads, "threads (default: all cores)", 1, 1024);
    add_placement_flags(a, &pf);
    a.examples("  yiti logits -m model.gguf --tokens 1,403,407 --out logits.f32\n");
    if (!a.parse(argc, argv)) return a.exit_code();
    prompt_given = a.given("-p") || a.given("--prompt");
    if (path.empty()) throw Error("missing -m MODEL");
    if (out_path.empty()) throw Error("missing --out FILE");
    if (tokens_arg.empty() == !prompt_given) throw Error("give exactly one of --tokens and -p");

    std::shared_ptr<model::Model> m = load_model("logits", path, pf);
    std::vector<int32_t> tokens;
    if (!tokens_arg.empty()) {
        tokens = parse_token_list(tokens_arg);
    } else {
        auto tok = Tokenizer::from_gguf(m->file());
        tokens = tok->encode(prompt, true, false);
        if (tokens.empty()) throw Error("the prompt has no tokens");
    }
    engine::SessionOptions so;
    so.exact = exact;
    so.n_threads = threads;
    so.n_ctx = std::max<int64_t>((int64_t)tokens.size(), std::min<int64_t>(m->hparams().n_ctx_train, 4096));
    engine::Session s(m, so);
    std::vector<float> logits = s.eval(tokens, true);
    FILE* f = fopen(out_path.c_str(), "wb");
    if (!f) throw Error(strprintf("cannot create '%s'", out_path.c_str()));
    size_t w = fwrite(logits.data(), sizeof(float), logits.size(), f);
    if (fclose(f) != 0 || w != logits.size()) throw Error(strprintf("writing '%s' failed", out_path.c_str()));
    fprintf(stderr, "wrote %zu x %lld logits to %s\n", tokens.size(), (long long)s.n_vocab(), out_path.c_str());
    return 0;
}

}  // namespace yiti::cli
