// yiti bench: prompt processing (ppN) and generation (tgN) speed, as llama-bench measures them, with
// the memory bandwidth they reach next to the machine's measured read bandwidth.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "args.h"
#include "load.h"
#include "commands.h"
#include "core/error.h"
#include "core/membw.h"
#include "cpu/kernels.h"
#include "engine/session.h"

namespace yiti::cli {

namespace {

struct Stat {
    double mean = 0, sd = 0;
};
Stat stat_of(const std::vector<double>& v) {
    Stat s;
    if (v.empty()) return s;
    for (double x : v) s.mean += x;
    s.mean /= (double)v.size();
    if (v.size() > 1) {
        double q = 0;
        for (double x : v) q += (x - s.mean) * (x - s.mean);
        s.sd = std::sqrt(q / (double)(v.size() - 1));
    }
    return s;
}

// CPU time of the whole process (all threads), seconds.
double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec + 1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

std::string json_str(const std::string& s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\', o += c;
        else if ((unsigned char)c < 0x20) o += strprintf("\\u%04x", c);
        else o += c;
    }
    return o + "\"";
}

}  // namespace

int cmd_bench(int argc, char** argv) {
    std::string path;
    int64_t n_prompt = 512, n_gen = 128;
    int threads = 0, reps = 5;
    int64_t membw_mib = 0;
    bool json = false, no_membw = false;
    PlacementFlags pf;
    Args a("bench", "-m MODEL [-p 512] [-n 128] [-t THREADS] [-r REPS] [--json]");
    a.str("-m,--model", &path, "GGUF model file", "FILE");
    a.integer("-p,--n-prompt", &n_prompt, "prompt tokens of the pp test, processed in one batch (0: skip; default 512)", 0,
              1 << 20);
    a.integer("-n,--n-gen", &n_gen, "tokens of the tg test, generated one at a time (0: skip; default 128)", 0, 1 << 20);
    a.integer("-t,--threads", &threads, "threads (default: all cores)", 1, 1024);
    a.integer("-r,--repetitions", &reps, "repetitions of each test (default 5)", 1, 1000);
    a.integer("--membw-mib", &membw_mib, "buffer of the read-bandwidth measurement in MiB (default 2048)", 64, 1 << 20);
    a.flag("--no-membw", &no_membw, "skip the read-bandwidth measurement");
    a.flag("--json", &json, "one JSON object per test on stdout");
    add_placement_flags(a, &pf);
    a.examples("  yiti bench -m models/tinyllama-Q4_K_M.gguf -t 2\n"
               "  yiti bench -m model.gguf -p 512 -n 128 -r 3 --json\n");
    if (!a.parse(argc, argv)) return a.exit_code();
    if (path.empty()) throw Error("missing -m MODEL");

    std::shared_ptr<model::Model> m = load_model("bench", path, pf);
    const model::ModelStats st = m->stats();
    engine::SessionOptions so;
    so.n_threads = threads;
    so.n_ctx = std::max<int64_t>(16, n_prompt + n_gen + 1);
    so.n_batch = std::max<int64_t>(1, n_prompt);
    engine::Session s(m, so);
    const int nt = s.runtime().n_threads();
    const int64_t V = s.n_vocab();

    std::mt19937 rng(42);
    auto random_tokens = [&](int64_t n) {
        std::vector<int32_t> t((size_t)n);
        for (auto& x : t) x = (int32_t)(rng() % (uint32_t)V);
        return t;
    };
    using clock = std::chrono::steady_clock;
    auto secs = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };

    // Warm-up: touches every weight page and the caches' code paths once.
    s.truncate(0);
    s.eval(random_tokens(std::min<int64_t>(std::max<int64_t>(n_prompt, 1), 32)));
    s.eval(random_tokens(1));

    struct Result {
        std::string test;
        int64_t n_tokens;
        std::vector<double> tps;
        double bytes_per_token;
        double cpu_s = 0;  // CPU seconds over all repetitions
        runtime::DeviceCounters gpu;  // over all repetitions
    };
    auto counters_since = [](const runtime::DeviceCounters& a) {
        const runtime::DeviceCounters b = runtime::device_counters();
        return runtime::DeviceCounters{b.submits - a.submits, b.syncs - a.syncs, b.h2d_bytes - a.h2d_bytes,
                                       b.d2h_bytes - a.d2h_bytes};
    };
    std::vector<Result> results;
    if (n_prompt > 0) {
        Result r{strprintf("pp%lld", (long long)n_prompt), n_prompt, {}, 0};
        // One pass reads every weight once (all experts, as a long prompt routes to all).
        r.bytes_per_token = (double)st.weight_bytes / (double)n_prompt;
        const runtime::DeviceCounters g0 = runtime::device_counters();
        for (int i = 0; i < reps; ++i) {
            s.truncate(0);
            const auto toks = random_tokens(n_prompt);
            const double c0 = cpu_seconds();
            const auto t0 = clock::now();
            s.eval(toks);
            r.tps.push_back((double)n_prompt / secs(t0, clock::now()));
            r.cpu_s += cpu_seconds() - c0;
        }
        r.gpu = counters_since(g0);
        results.push_back(r);
    }
    if (n_gen > 0) {
        Result r{strprintf("tg%lld", (long long)n_gen), n_gen, {}, (double)st.active_bytes_per_token};
        const runtime::DeviceCounters g0 = runtime::device_counters();
        for (int i = 0; i < reps; ++i) {
            s.truncate(0);
            const auto toks = random_tokens(n_gen);
            const double c0 = cpu_seconds();
            const auto t0 = clock::now();
            for (int64_t k = 0; k < n_gen; ++k) s.eval({toks[(size_t)k]});
            r.tps.push_back((double)n_gen / secs(t0, clock::now()));
            r.cpu_s += cpu_seconds() - c0;
        }
        r.gpu = counters_since(g0);
        results.push_back(r);
    }

    // The machine's read bandwidth, measured after the tests: measured before them (right after the
    // model's load), its 2 GiB buffer slowed the generation test that followed (tinyllama-Q4_K_M
    // tg128, 7 paired runs: median 47.4 against 49.5 t/s without it; the model's huge pages stay),
    // and it read lower itself (37.0-37.4 against 38.6-39.4 GB/s after the tests, same hour).
    MemBwResult bw;
    if (!no_membw) bw = measure_read_bandwidth(s.runtime().pool(), (size_t)membw_mib << 20);

    const auto& hp = m->hparams();
    const std::string isa = cpu::isa_name(cpu::cpu_best_isa());
    if (!json) {
        printf("model: %s (%s, %.2f GiB, %.3f B params, %.1f MiB read per generated token)\n", path.c_str(),
               hp.arch.c_str(), (double)st.weight_bytes / (1 << 30), (double)st.n_params / 1e9,
               (double)st.active_bytes_per_token / (1 << 20));
        if (!no_membw)
            printf("memory read bandwidth: %.1f GB/s (best of %d passes over %.0f MiB, median %.1f GB/s, %d threads)\n",
                   bw.gb_per_s, bw.passes, (double)bw.buffer_bytes / (1 << 20), bw.gb_per_s_median, bw.threads);
        printf("\n| %-8s | %7s | %-6s | %16s | %9s | %8s | %10s |\n", "test", "threads", "isa", "t/s", "GB/s", "of bw",
               "CPU ms/tok");
        printf("| %-8s | %7s | %-6s | %16s | %9s | %8s | %10s |\n", "--------", "------:", "------", "---------------:",
               "--------:", "-------:", "---------:");
    }
    for (const Result& r : results) {
        const Stat t = stat_of(r.tps);
        const double gbs = t.mean * r.bytes_per_token / 1e9;
        const double frac = bw.gb_per_s > 0 ? gbs / bw.gb_per_s : 0;
        const double n_tok_all = (double)(r.n_tokens * (int64_t)r.tps.size());
        const double cpu_ms = 1e3 * r.cpu_s / n_tok_all;
        if (json) {
            printf("{\"test\": %s, \"model\": %s, \"arch\": %s, \"n_tokens\": %lld, \"tokens_per_s\": %.4f, "
                   "\"tokens_per_s_sd\": %.4f, \"samples_tokens_per_s\": [",
                   json_str(r.test).c_str(), json_str(path).c_str(), json_str(hp.arch).c_str(), (long long)r.n_tokens,
                   t.mean, t.sd);
            for (size_t i = 0; i < r.tps.size(); ++i) printf("%s%.4f", i ? ", " : "", r.tps[i]);
            printf("], \"gb_per_s\": %.3f, \"bytes_per_token\": %.0f, \"membw_gb_per_s\": %.3f, \"bw_fraction\": %.4f, "
                   "\"threads\": %d, \"isa\": %s, \"model_bytes\": %zu, \"active_bytes_per_token\": %zu, "
                   "\"n_params\": %lld, \"reps\": %d, \"cpu_ms_per_token\": %.3f, \"devices\": %s, "
                   "\"submits_per_token\": %.4f, \"syncs_per_token\": %.4f, \"h2d_bytes_per_token\": %.1f, "
                   "\"d2h_bytes_per_token\": %.1f}\n",
                   gbs, r.bytes_per_token, bw.gb_per_s, frac, nt, json_str(isa).c_str(), st.weight_bytes,
                   st.active_bytes_per_token, (long long)st.n_params, reps, cpu_ms, json_str(m->plan().summary()).c_str(),
                   r.gpu.submits / n_tok_all, r.gpu.syncs / n_tok_all, r.gpu.h2d_bytes / n_tok_all,
                   r.gpu.d2h_bytes / n_tok_all);
        } else {
            printf("| %-8s | %7d | %-6s | %8.2f ± %5.2f | %9.2f | %7.1f%% | %10.2f |\n", r.test.c_str(), nt,
                   isa == "avx512_vnni" ? "vnni" : isa.c_str(), t.mean, t.sd, gbs, 100 * frac, cpu_ms);
            if (r.gpu.submits > 0)
                printf("|          | GPU per token: %.2f submits, %.2f syncs, %.0f B to the device, %.0f B back |\n",
                       r.gpu.submits / n_tok_all, r.gpu.syncs / n_tok_all, r.gpu.h2d_bytes / n_tok_all,
                       r.gpu.d2h_bytes / n_tok_all);
        }
        fflush(stdout);
    }
    if (!json)
        printf("\nGB/s: weight bytes read per token (tg: the layers' weights and the experts a token uses; pp: every "
               "weight once per pass) x tokens/s; 'of bw' relates it to the measured read bandwidth; CPU ms/tok: CPU time of "
               "all threads per token (on a busy machine, what the work costs while it runs).\n");
    return 0;
}

}  // namespace yiti::cli
