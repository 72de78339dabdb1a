// yiti bench-serve: load test for an OpenAI-compatible server (yiti serve, llama.cpp's
// llama-server, ...). For each number of concurrent clients it reports aggregate output tokens/s,
// time to first token and time per output token (median and p95), from streamed requests.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "server/http_client.h"

namespace yiti::cli {

namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

struct Sample {
    bool ok = false;
    std::string error;
    double ttft = 0, tpot = -1, total = 0;
    int64_t tokens = 0;
};

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    const double pos = q * (double)(v.size() - 1);
    const size_t lo = (size_t)std::floor(pos), hi = (size_t)std::ceil(pos);
    return v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
}

const std::vector<std::string> k_prompts = {
    "Write a short story about a robot who learns to paint.",
    "Explain how a bicycle stays upright while moving.",
    "List five tips for learning a new language, with one sentence each.",
    "Describe the water cycle to a ten year old.",
    "What are the pros and cons of working from home?",
    "Tell me about the history of the printing press.",
    "Give a recipe for a simple vegetable soup.",
    "Why is the sky blue? Answer in a few sentences.",
};

}  // namespace

int cmd_bench_serve(int argc, char** argv) {
    std::string url = "http://127.0.0.1:8080", model, levels_s = "1,2,4,8,16", api_key, endpoint = "chat", prompt,
                json_out;
    int per_client = 2, max_tokens = 64, timeout = 600;
    bool no_ignore_eos = false;
    Args a("bench-serve", "[--url URL] [--clients 1,2,4,8,16] [--requests N] [--max-tokens N] [--endpoint chat|completions]");
    a.str("--url", &url, "server base URL (default http://127.0.0.1:8080)", "URL");
    a.str("--model", &model, "model name to send (default: the first one /v1/models lists)", "NAME");
    a.str("--clients", &levels_s, "comma-separated numbers of concurrent clients (default 1,2,4,8,16)", "LIST");
    a.integer("--requests", &per_client, "requests per client at each level (default 2)", 1, 1000);
    a.integer("--max-tokens", &max_tokens, "tokens to generate per request (default 64)", 1, 1 << 20);
    a.str("--endpoint", &endpoint, "chat (/v1/chat/completions, default) or completions (/v1/completions)", "E");
    a.str("--prompt", &prompt, "one prompt for every request (default: a set of varied prompts)", "TEXT");
    a.str("--api-key", &api_key, "sent as 'Authorization: Bearer KEY'", "KEY");
    a.str("--json", &json_out, "also write the results as JSON to this file", "FILE");
    a.integer("--timeout", &timeout, "seconds to wait for a server answer (default 600)", 1, 86400);
    a.flag("--no-ignore-eos", &no_ignore_eos, "let requests end at the end-of-text token (default: always generate --max-tokens)");
    a.examples("  yiti serve -m model.gguf --port 8080 --parallel 16 &\n"
               "  yiti bench-serve --url http://127.0.0.1:8080 --max-tokens 128\n");
    if (!a.parse(argc, argv)) return a.exit_code();
    if (endpoint != "chat" && endpoint != "completions") throw Error("--endpoint must be 'chat' or 'completions'");
    std::vector<int> levels;
    {
        std::stringstream ss(levels_s);
        std::string x;
        while (std::getline(ss, x, ',')) {
            int v = std::atoi(x.c_str());
            if (v < 1 || v > 1024) throw Error("bad --clients entry '" + x + "'");
            levels.push_back(v);
        }
    }
    const server::http::Url u = server::http::parse_url(url);
    std::vector<std::pair<std::string, std::string>> headers = {{"Content-Type", "application/json"}};
    if (!api_key.empty()) headers.emplace_back("Authorization", "Bearer " + api_key);

    if (model.empty()) {
        server::http::Client c(u.host, u.port, timeout);
        auto r = c.request("GET", u.path + "/v1/models", "", headers);
        if (r.status != 200) throw Error(strprintf("GET /v1/models answered %d: %s", r.status, r.body.c_str()));
        json j = json::parse(r.body, nullptr, false);
        if (j.is_discarded() || !j.contains("data") || j["data"].empty()) throw Error("GET /v1/models gave no model");
        model = j["data"][0].value("id", "");
    }
    fprintf(stderr, "bench-serve: %s, model '%s', %s endpoint, %d tokens per request, %d requests per client\n", url.c_str(),
            model.c_str(), endpoint.c_str(), max_tokens, per_client);

    auto one_request = [&](int k) {
        Sample s;
        json body = json::object();
        body["model"] = model;
        const std::string& p = prompt.empty() ? k_prompts[(size_t)k % k_prompts.size()] : prompt;
        if (endpoint == "chat")
            body["messages"] = json::array({json{{"role", "user"}, {"content", p}}});
        else
            body["prompt"] = p;
        body["max_tokens"] = max_tokens;
        body["temperature"] = 0;
        body["stream"] = true;
        body["stream_options"] = json{{"include_usage", true}};
        if (!no_ignore_eos) body["ignore_eos"] = true;
        const std::string path = u.path + (endpoint == "chat" ? "/v1/chat/completions" : "/v1/completions");
        server::http::SseParser sse;
        const auto t0 = clock_type::now();
        clock_type::time_point t_first{}, t_last{};
        int64_t chunks = 0, usage_tokens = -1;
        bool got_first = false;
        try {
            server::http::Client c(u.host, u.port, timeout);
            auto r = c.request("POST", path, body.dump(), headers, [&](std::string_view d) {
                sse.feed(d, [&](const std::string& ev) {
                    if (ev == "[DONE]") return;
                    json j = json::parse(ev, nullptr, false);
                    if (j.is_discarded()) return;
                    if (j.contains("error")) {
                        s.error = j["error"].dump();
                        return;
                    }
                    if (j.contains("usage") && j["usage"].is_object())
                        usage_tokens = j["usage"].value("completion_tokens", (int64_t)-1);
                    if (!j.contains("choices") || j["choices"].empty()) return;
                    const json& ch = j["choices"][0];
                    bool text = false;
                    if (ch.contains("delta")) {
                        const json& d = ch["delta"];
                        for (const char* f : {"content", "reasoning_content"})
                            if (d.contains(f) && d[f].is_string() && !d[f].get<std::string>().empty()) text = true;
                    } else if (ch.contains("text") && ch["text"].is_string() && !ch["text"].get<std::string>().empty()) {
                        text = true;
                    }
                    if (!text) return;
                    const auto now = clock_type::now();
                    if (!got_first) {
                        got_first = true;
                        t_first = now;
                    }
                    t_last = now;
                    chunks++;
                });
                return true;
            });
            if (r.status != 200) {
                s.error = strprintf("HTTP %d", r.status);
                return s;
            }
        } catch (const std::exception& e) {
            s.error = e.what();
            return s;
        }
        const auto t_end = clock_type::now();
        if (!got_first) {
            if (s.error.empty()) s.error = "no tokens";
            return s;
        }
        s.ok = s.error.empty();
        s.tokens = usage_tokens >= 0 ? usage_tokens : chunks;
        s.ttft = std::chrono::duration<double>(t_first - t0).count();
        s.total = std::chrono::duration<double>(t_end - t0).count();
        if (s.tokens > 1) s.tpot = std::chrono::duration<double>(t_last - t_first).count() / (double)(s.tokens - 1);
        return s;
    };

    // A warm-up request (page-in, prefix cache state) that is not counted.
    {
        Sample w = one_request(0);
        if (!w.ok) throw Error("the warm-up request failed: " + w.error);
    }

    json results = json::array();
    printf("| clients | requests | errors | output tok/s | TTFT p50 (ms) | TTFT p95 (ms) | TPOT p50 (ms) | TPOT p95 (ms) |\n");
    printf("|--------:|---------:|-------:|-------------:|--------------:|--------------:|--------------:|--------------:|\n");
    fflush(stdout);
    for (int n : levels) {
        std::vector<Sample> samples;
        std::mutex mu;
        std::atomic<int> next{0};
        const int total = n * per_client;
        const auto t0 = clock_type::now();
        std::vector<std::thread> th;
        for (int c = 0; c < n; ++c)
            th.emplace_back([&] {
                for (;;) {
                    int k = next++;
                    if (k >= total) return;
                    Sample s = one_request(k);
                    std::lock_guard<std::mutex> lk(mu);
                    samples.push_back(s);
                }
            });
        for (auto& t : th) t.join();
        const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
        std::vector<double> ttft, tpot;
        int64_t tokens = 0;
        int errors = 0;
        std::string first_error;
        for (auto& s : samples) {
            if (!s.ok) {
                errors++;
                if (first_error.empty()) first_error = s.error;
                continue;
            }
            tokens += s.tokens;
            ttft.push_back(s.ttft * 1000);
            if (s.tpot >= 0) tpot.push_back(s.tpot * 1000);
        }
        const double tps = tokens / std::max(wall, 1e-9);
        printf("| %7d | %8d | %6d | %12.1f | %13.1f | %13.1f | %13.2f | %13.2f |\n", n, total, errors, tps, percentile(ttft, 0.5),
               percentile(ttft, 0.95), percentile(tpot, 0.5), percentile(tpot, 0.95));
        fflush(stdout);
        if (errors) fprintf(stderr, "bench-serve: %d of %d requests failed, e.g.: %s\n", errors, total, first_error.c_str());
        results.push_back(json{{"clients", n},
                               {"requests", total},
                               {"errors", errors},
                               {"wall_s", wall},
                               {"output_tokens", tokens},
                               {"output_tokens_per_s", tps},
                               {"ttft_ms_p50", percentile(ttft, 0.5)},
                               {"ttft_ms_p95", percentile(ttft, 0.95)},
                               {"tpot_ms_p50", percentile(tpot, 0.5)},
                               {"tpot_ms_p95", percentile(tpot, 0.95)}});
    }
    if (!json_out.empty()) {
        std::ofstream f(json_out);
        if (!f) throw Error("cannot write '" + json_out + "'");
        f << json{{"url", url}, {"model", model}, {"endpoint", endpoint}, {"max_tokens", max_tokens}, {"levels", results}}.dump(2)
          << "\n";
    }
    return 0;
}

}  // namespace yiti::cli
