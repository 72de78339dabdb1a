// The OpenAI-compatible API over the engine: routing, authentication, the generation endpoints
// (streaming and not), models, health, metrics and the web page.
//
//   POST /v1/chat/completions   POST /v1/completions   (also without the /v1 prefix)
//   GET  /v1/models  /v1/models/{id}   GET /health   GET /metrics   GET /  (web chat)
//   POST /tokenize  /detokenize  /apply-template  (as llama.cpp's server has them)
#pragma once
#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "engine/engine.h"
#include "server/chat_prompt.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/oai_request.h"

namespace yiti {
class Tokenizer;
}

namespace yiti::server {

class Generation;

struct ApiOptions {
    std::string model_id;          // what /v1/models lists and responses name
    std::string api_key;           // "" : no authentication
    bool split_reasoning = true;   // <think> ... </think> -> reasoning_content in chat answers
    RequestLimits limits;
    int sse_keepalive_seconds = 10;  // a comment line on a stream that has been quiet this long
    // Browser safety. Origins whose pages may call the API (CORS); "*" allows every origin. A
    // request from any other origin (other than the server's own) is refused with 403.
    std::vector<std::string> cors_origins;
    // Refuse requests whose Host is not a loopback name or address (DNS rebinding), apart from
    // `allowed_hosts`; set when the server listens on loopback only.
    bool loopback_hosts_only = false;
    std::vector<std::string> allowed_hosts;
    bool metrics_public = false;     // /metrics without the key even when a key is set
};

class Api {
public:
    Api(engine::Engine& eng, const Tokenizer& tok, const ChatPrompt& chat, ApiOptions opt);
    ~Api();

    void handle(const http::Request& req, http::Response& res);
    // The checks on a request's head (Host, Origin): the HTTP layer's admission check
    // (http::ServerOptions::admit), run before the body is read; thread-safe.
    http::Refusal admit(const http::Request& req) const;

    // New generation requests get 503; running ones are cancelled and end their streams with an
    // error event and [DONE].
    void begin_shutdown();
    bool shutting_down() const { return shutting_down_.load(); }
    int generations_in_flight() const;

    Metrics& metrics() { return metrics_; }
    void set_connection_counter(std::function<int()> f) { connections_ = std::move(f); }
    // The HTTP layer's own figures for /metrics (buffered body bytes and what it ended by reason).
    void set_http_gauges(std::function<void(Metrics::Gauges&)> f) { http_gauges_ = std::move(f); }

private:
    struct GenJob;
    void route(const http::Request& req, http::Response& res, std::string& endpoint);
    void chat_completions(const http::Request& req, http::Response& res);
    void completions(const http::Request& req, http::Response& res);
    void run(const http::Request& req, http::Response& res, std::shared_ptr<GenJob> job);
    void models(http::Response& res, const std::string& id);
    void utility(const http::Request& req, http::Response& res, const std::string& path);
    std::string render_chat(const ChatRequest& cr) const;
    bool authorized(const http::Request& req) const;
    bool origin_listed(const std::string& origin) const;
    // At least this many tokens for a text of `bytes` bytes (0 when no bound is known).
    int64_t min_tokens(size_t bytes) const { return max_piece_bytes_ ? (int64_t)(bytes / max_piece_bytes_) : 0; }
    void track(Generation* g, bool add);
    // Structured outputs: the grammar of a response_format (null for text; 400 for a schema the
    // compiler refuses), from a small LRU of mask caches keyed by the schema text, and the
    // constraint a choice runs with.
    std::shared_ptr<sample::MaskCache> grammar_for(const ResponseFormat& rf);
    std::shared_ptr<const engine::ConstraintSpec> constraint_for(std::shared_ptr<sample::MaskCache> g,
                                                                 bool reasoning, bool start_in_reasoning);
    std::shared_ptr<const engine::ConstraintVocab> constraint_vocab();  // built once, on first use

    engine::Engine& eng_;
    const Tokenizer& tok_;
    const ChatPrompt& chat_;
    ApiOptions opt_;
    Metrics metrics_;
    std::function<int()> connections_;
    std::function<void(Metrics::Gauges&)> http_gauges_;
    std::atomic<bool> shutting_down_{false};
    mutable std::mutex mu_;
    std::unordered_set<Generation*> live_;
    int64_t created_;
    std::mutex cv_mu_;
    std::shared_ptr<const engine::ConstraintVocab> cv_;
    std::mutex grammar_mu_;
    std::list<std::pair<std::string, std::shared_ptr<sample::MaskCache>>> grammars_;  // most recently used first
    static constexpr size_t kGrammarCacheSize = 16;
    size_t max_piece_bytes_ = 0;  // the longest text one token stands for (byte-level and SentencePiece vocabularies)
};

// A host name or address that reaches this machine only: localhost, *.localhost, 127.0.0.0/8, ::1
// (and IPv4-mapped 127.x). Lower-case names without a port.
bool is_loopback_name(const std::string& host);

// Sends a JSON body with the right content type.
void set_json(http::Response& res, int status, const json& body);
void set_error(http::Response& res, const ApiError& e);

}  // namespace yiti::server
