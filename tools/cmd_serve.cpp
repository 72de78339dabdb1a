// yiti serve: an OpenAI-compatible HTTP server with a web chat page, over the batching engine.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "args.h"
#include "load.h"
#include "commands.h"
#include "core/error.h"
#include "engine/engine.h"
#include "server/api.h"
#include "server/chat_prompt.h"
#include "server/http.h"
#include "tokenizer/tokenizer.h"

namespace yiti::cli {

namespace {

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("cannot read '" + path + "'");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string model_id_from_path(const std::string& path) {
    std::string base = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
    if (base.size() > 5 && base.compare(base.size() - 5, 5, ".gguf") == 0) base.resize(base.size() - 5);
    return base.empty() ? std::string("model") : base;
}

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos <= s.size()) {
        size_t e = s.find(',', pos);
        if (e == std::string::npos) e = s.size();
        std::string item = s.substr(pos, e - pos);
        while (!item.empty() && item.front() == ' ') item.erase(0, 1);
        while (!item.empty() && item.back() == ' ') item.pop_back();
        while (!item.empty() && item.back() == '/') item.pop_back();  // "https://x.org/" names the origin https://x.org
        if (!item.empty()) out.push_back(item);
        pos = e + 1;
    }
    return out;
}

}  // namespace

int cmd_serve(int argc, char** argv) {
    std::string path, host = "127.0.0.1", api_key, template_file, alias, reasoning = "deepseek";
    int port = 8080, parallel = 4, threads = 0, max_body_mb = 8;
    int64_t n_ctx = 0, kv_tokens = 0, n_batch = 256;
    bool exact = false, no_prefix_cache = false, quiet = false, metrics_public = false;
    std::string cors_origins, allowed_hosts;
    server::http::ServerOptions so;
    int max_buffered_mb = (int)(so.max_buffered_body_bytes >> 20), json_depth = 128;
    PlacementFlags pf;
    Args a("serve",
           "-m MODEL [--host H] [--port P] [--parallel N] [--ctx-size N] [--api-key KEY] [--exact] [--threads N] "
           "[--batch-size N] [--chat-template FILE] [--no-prefix-cache]");
    a.str("-m,--model", &path, "GGUF model file", "FILE");
    a.str("--host", &host, "address to listen on (default 127.0.0.1; 0.0.0.0: every interface)", "HOST");
    a.integer("--port", &port, "port to listen on (default 8080; 0: any free port)", 0, 65535);
    a.integer("-np,--parallel", &parallel, "sequences decoded together at most (default 4)", 1, 256);
    a.integer("-c,--ctx-size", &n_ctx, "context per request, prompt and answer (default: min(training context, 4096))", 8,
              1 << 24);
    a.integer("--kv-size", &kv_tokens, "KV cache capacity in tokens, shared by all requests (default: 4 x context)", 8,
              1 << 26);
    a.integer("-b,--batch-size", &n_batch, "tokens per forward pass at most (default 256)", 1, 1 << 20);
    a.integer("-t,--threads", &threads, "threads (default: all cores)", 1, 1024);
    a.str("--api-key", &api_key, "require 'Authorization: Bearer KEY' on /v1/ requests (default: env YITI_API_KEY)", "KEY");
    a.str("--chat-template", &template_file, "Jinja chat template file to use instead of the model's", "FILE");
    a.str("--alias", &alias, "model name to report (default: the file name)", "NAME");
    a.str("--reasoning-format", &reasoning,
          "deepseek: return <think> ... </think> as reasoning_content (default); none: leave it in the content", "FMT");
    a.integer("--max-body-mb", &max_body_mb, "largest request body in MiB (default 8)", 1, 1024);
    a.integer("--max-buffered-mb", &max_buffered_mb,
              "request bodies being received, all connections together, in MiB; beyond: 503 (default 128)", 1, 1 << 20);
    a.integer("--max-connections", &so.max_connections, "open connections at most; beyond: 503 (default 512)", 1, 1 << 20);
    a.integer("--http-threads", &so.worker_threads,
              "requests answered at once (a streamed answer holds one; more wait their turn; default 32)", 1, 4096);
    a.integer("--header-timeout", &so.header_timeout_seconds,
              "seconds for a request's headers to arrive, from its first byte; then 408 (default 10)", 1, 3600);
    a.integer("--body-timeout", &so.body_timeout_seconds,
              "seconds for a request body to arrive, plus one per 64 KiB of it; then 408 (default 30)", 1, 3600);
    a.integer("--keep-alive", &so.keep_alive_seconds, "seconds an idle connection is kept open (default 30)", 1, 3600);
    a.integer("--json-max-depth", &json_depth, "deepest nesting of arrays and objects in a request body (default 128)", 1,
              10000);
    a.str("--cors-origins", &cors_origins,
          "comma-separated origins whose web pages may call the API (CORS; '*': any). Default: none", "LIST");
    a.str("--allowed-hosts", &allowed_hosts,
          "comma-separated host names to answer besides loopback ones when listening on loopback", "LIST");
    a.flag("--metrics-public", &metrics_public, "serve /metrics without the API key when a key is set");
    a.flag("--exact", &exact, "F32 activations, dequantized weights, F32 KV cache");
    a.flag("--no-prefix-cache", &no_prefix_cache, "do not reuse the KV cache of earlier prompts");
    a.flag("--quiet", &quiet, "no per-request log lines");
    add_placement_flags(a, &pf);
    a.examples("  yiti serve -m model.gguf --port 8080\n"
               "  yiti serve -m model.gguf --host 0.0.0.0 --parallel 8 --api-key secret\n"
               "  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\\n"
               "       -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'\n");
    if (!a.parse(argc, argv)) return a.exit_code();
    if (path.empty()) throw Error("missing -m MODEL");
    if (reasoning != "deepseek" && reasoning != "none")
        throw Error("--reasoning-format must be 'deepseek' or 'none', got '" + reasoning + "'");
    if (api_key.empty()) {
        const char* env = getenv("YITI_API_KEY");
        if (env) api_key = env;
    }

    // SIGINT and SIGTERM go to one thread that runs the shutdown; every other thread (engine,
    // connections) inherits the blocked mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);

    std::shared_ptr<model::Model> m = load_model("serve", path, pf);
    auto tok = Tokenizer::from_gguf(m->file());
    std::string tmpl_src = template_file.empty() ? "" : read_file(template_file);
    server::ChatPrompt chat(m->file(), *tok, tmpl_src);
    if (chat.is_fallback()) fprintf(stderr, "yiti serve: %s; using ChatML\n", chat.fallback_reason().c_str());

    const auto& hp = m->hparams();
    if (n_ctx == 0) n_ctx = std::min<int64_t>(hp.n_ctx_train > 0 ? hp.n_ctx_train : 4096, 4096);
    if (kv_tokens > 0 && n_ctx > kv_tokens) throw Error("--ctx-size must not exceed --kv-size");
    if (kv_tokens == 0) kv_tokens = 4 * n_ctx;

    engine::EngineOptions eo;
    eo.n_threads = threads;
    eo.exact = exact;
    eo.n_parallel = parallel;
    eo.n_batch = n_batch;
    eo.prefix_cache = !no_prefix_cache;
    eo.n_ctx_per_seq = n_ctx;
    eo.n_ctx = kv_tokens;
    engine::Engine eng(m, eo);

    server::ApiOptions ao;
    ao.model_id = alias.empty() ? model_id_from_path(path) : alias;
    ao.api_key = api_key;
    ao.split_reasoning = reasoning == "deepseek";
    ao.cors_origins = split_list(cors_origins);
    ao.allowed_hosts = split_list(allowed_hosts);
    ao.loopback_hosts_only = server::is_loopback_name(host);
    ao.metrics_public = metrics_public;
    ao.limits.max_json_depth = json_depth;
    server::Api api(eng, *tok, chat, ao);

    so.max_body_bytes = (size_t)max_body_mb << 20;
    so.max_buffered_body_bytes = (size_t)max_buffered_mb << 20;
    if (so.max_buffered_body_bytes < so.max_body_bytes)
        throw Error("--max-buffered-mb must be at least --max-body-mb (one body must fit)");
    so.log_requests = !quiet;
    so.admit = [&api](const server::http::Request& rq) { return api.admit(rq); };
    so.error_body = [](int status, const std::string& msg) {
        const char* code = status == 413   ? "request_too_large"
                           : status == 431 ? "headers_too_large"
                           : status == 408 ? "request_timeout"
                           : status == 503 ? "server_overloaded"
                           : status == 403 ? "forbidden"
                                           : "";
        return server::error_body(server::ApiError(status, msg, "", code));
    };
    server::http::Server srv([&api](const server::http::Request& rq, server::http::Response& rs) { api.handle(rq, rs); }, so);
    srv.bind(host, port);
    api.set_connection_counter([&srv] { return srv.open_connections(); });
    api.set_http_gauges([&srv](server::Metrics::Gauges& g) {
        const server::http::ServerCounters c = srv.counters();
        g.buffered_body_bytes = srv.buffered_body_bytes();
        g.http_ended = {{"timeout", c.timeouts},
                        {"over_capacity", c.over_capacity},
                        {"malformed", c.malformed},
                        {"refused", c.refused},
                        {"idle_evicted", c.idle_evicted}};
    });

    fprintf(stderr, "yiti serve: model '%s' (%s, %d layers, vocab %lld), %s, context %lld per request, KV cache %lld tokens, %d parallel%s%s\n",
            ao.model_id.c_str(), hp.arch.c_str(), hp.n_layer, (long long)hp.n_vocab,
            chat.is_fallback() ? "ChatML template (the model has none)" : "the model's chat template",
            (long long)eng.n_ctx_per_seq(), (long long)eng.stats().kv_tokens_capacity, eng.options().n_parallel, exact ? ", exact" : "",
            api_key.empty() ? "" : ", API key required");
    const std::string shown_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    if (!ao.loopback_hosts_only && api_key.empty())
        fprintf(stderr, "yiti serve: warning: listening on %s without an API key: anyone who can reach this port can use the "
                        "model (set --api-key)\n", host.c_str());
    fprintf(stderr, "yiti serve: CORS %s; %s\n", ao.cors_origins.empty() ? "off (no other site's pages may call the API)" : ("for " + cors_origins).c_str(),
            ao.loopback_hosts_only ? "answering loopback host names only" : "answering any host name");
    fprintf(stderr, "yiti serve: listening on http://%s:%d\n", shown_host.c_str(), srv.port());
    fflush(stderr);

    std::atomic<bool> done{false};
    std::thread sig_thread([&] {
        int sig = 0;
        bool stopping = false;
        for (;;) {
            if (sigwait(&sigs, &sig) != 0) continue;
            if (done) return;  // the server ended by itself
            if (stopping) {
                fprintf(stderr, "yiti serve: second signal, exiting now\n");
                _exit(130);
            }
            if (sig == SIGUSR1) continue;
            stopping = true;
            fprintf(stderr, "yiti serve: %s received, shutting down (in-flight requests are ended)\n",
                    sig == SIGINT ? "SIGINT" : "SIGTERM");
            fflush(stderr);
            api.begin_shutdown();
            srv.interrupt();
        }
    });
    int rc = 0;
    try {
        srv.run();
    } catch (const std::exception& e) {
        fprintf(stderr, "yiti serve: error: %s\n", e.what());
        rc = 1;
    }
    // run() returns once interrupted; stop() waits for the open responses to end.
    api.begin_shutdown();
    srv.stop(5000);
    done = true;
    pthread_kill(sig_thread.native_handle(), SIGUSR1);
    sig_thread.join();
    eng.shutdown();
    fprintf(stderr, "yiti serve: stopped\n");
    return rc;
}

}  // namespace yiti::cli
