// yiti synth: random-weight GGUF models of realistic shapes, for benchmarks.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>

#include "args.h"
#include "bench/synth.h"
#include "commands.h"
#include "core/error.h"

namespace yiti::cli {

int cmd_synth(int argc, char** argv) {
    std::string preset = "tinyllama", type = "Q4_K_M", out;
    uint64_t seed = 1;
    int threads = 0, n_layer = 0;
    int64_t n_vocab = 0;
    bool list = false, quiet = false;
    Args a("synth", "[--preset NAME] [--type TYPE] -o FILE [--seed S] [--layers N] [--vocab N] [-t THREADS]");
    a.str("--preset", &preset, "model shape: tinyllama (TinyLlama-1.1B), deepseek-moe (DeepSeek-V3-style MLA + 64 "
                               "experts, a few GB), tiny-llama-test, tiny-deepseek-test (default tinyllama)", "NAME");
    a.str("--type", &type, "tensor type: a single type (Q8_0, F16, Q4_K, ...) or a K-quant mix (Q4_K_M, Q5_K_M); "
                           "default Q4_K_M", "TYPE");
    a.str("-o,--output", &out, "the GGUF file to write (keep it out of the repository: models/ or /tmp)", "FILE");
    a.u64("--seed", &seed, "random seed (default 1)");
    a.integer("--layers", &n_layer, "override the number of layers", 1, 4096);
    a.integer("--vocab", &n_vocab, "override the vocabulary size", 300, 1 << 22);
    a.integer("-t,--threads", &threads, "threads (default: all cores)", 1, 1024);
    a.flag("--list", &list, "list the presets and types");
    a.flag("-q,--quiet", &quiet, "no progress output");
    a.examples("  yiti synth --preset tinyllama --type Q4_K_M -o models/tinyllama-Q4_K_M.gguf\n"
               "  yiti synth --preset deepseek-moe --type Q8_0 -o models/dsmoe-Q8_0.gguf\n");
    if (!a.parse(argc, argv)) return a.exit_code();
    if (list) {
        printf("presets:");
        for (auto& p : bench::synth_presets()) printf(" %s", p.c_str());
        printf("\ntypes:");
        for (auto& t : bench::synth_type_names()) printf(" %s", t.c_str());
        printf("\n");
        return 0;
    }
    if (out.empty()) throw Error("missing -o FILE");
    bench::SynthShape s = bench::synth_preset(preset);
    if (n_layer > 0) {
        s.n_layer = n_layer;
        s.n_layer_dense_lead = std::min(s.n_layer_dense_lead, n_layer);
    }
    if (n_vocab > 0) s.n_vocab = n_vocab;
    const bench::SynthType ft = bench::synth_type(type);
    bench::SynthOptions opt;
    opt.seed = seed;
    opt.n_threads = threads;
    const auto t0 = std::chrono::steady_clock::now();
    if (!quiet)
        opt.progress = [&, last = -1](size_t done, size_t total) mutable {
            const int pct = (int)(100.0 * (double)done / (double)total);
            if (pct == last) return;
            last = pct;
            fprintf(stderr, "\rsynth: %6.1f%% of %.2f GB", 100.0 * (double)done / (double)total, (double)total / 1e9);
            fflush(stderr);
        };
    const bench::SynthResult r = bench::synth_write(s, ft, out, opt);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    struct stat st{};
    stat(out.c_str(), &st);
    if (!quiet) fprintf(stderr, "\n");
    printf("wrote %s: %s %s, %lld layers, %.3f B parameters, %zu tensors, %.2f GB in %.1f s\n", out.c_str(),
           s.arch.c_str(), ft.name.c_str(), (long long)s.n_layer, (double)r.n_params / 1e9, r.n_tensors,
           (double)st.st_size / 1e9, secs);
    return 0;
}

}  // namespace yiti::cli
