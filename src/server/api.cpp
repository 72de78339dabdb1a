#include "core/text.h"
#include "server/api.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/error.h"
#include "sample/json_schema.h"
#include "server/generation.h"
#include "server/oai_response.h"
#include "server/webui.h"
#include "tokenizer/reasoning.h"
#include "tokenizer/tokenizer.h"

namespace yiti::server {

using clock_type = std::chrono::steady_clock;

void set_json(http::Response& res, int status, const json& body) {
    res.status = status;
    res.body = dump(body);
    res.set_header("Content-Type", "application/json; charset=utf-8");
}

void set_error(http::Response& res, const ApiError& e) {
    set_json(res, e.status, error_object(e));
    if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
}

// Everything one generation request needs, shared with its streaming callback.
struct Api::GenJob {
    ResponseBuilder::Kind kind;
    GenParams p;
    std::vector<ChoiceSpec> specs;
    std::vector<int64_t> prompt_tokens;   // per prompt
    std::vector<std::string> echo;        // per choice: text put before the generated text
    std::unique_ptr<ResponseBuilder> rb;
    clock_type::time_point t0;
};

Api::Api(engine::Engine& eng, const Tokenizer& tok, const ChatPrompt& chat, ApiOptions opt)
    : eng_(eng), tok_(tok), chat_(chat), opt_(std::move(opt)), created_((int64_t)std::time(nullptr)) {
    if (opt_.limits.n_vocab == 0) opt_.limits.n_vocab = tok_.n_vocab();
    // A lower bound on the tokens of a text, to refuse a prompt that cannot fit before tokenizing
    // it: every input byte ends up in some token, and no token stands for more bytes than its
    // text (unknown bytes become one <unk> each). Not for WordPiece, which drops whitespace.
    if (tok_.type() == VocabType::BPE || (tok_.type() == VocabType::SPM && tok_.unk() >= 0)) {
        size_t longest = 4;
        for (int32_t id = 0; id < tok_.n_vocab(); ++id) longest = std::max(longest, tok_.token_to_piece(id, true).size());
        max_piece_bytes_ = longest;
    }
}

namespace {

std::string lower_ascii(const std::string& s) { return ascii_lower(s); }

// The host part of a Host header value ("[::1]:8080" -> "::1", "Example.com:80" -> "example.com").
std::string host_name(const std::string& host) {
    std::string h = lower_ascii(host);
    if (!h.empty() && h.front() == '[') {
        size_t e = h.find(']');
        return e == std::string::npos ? h : h.substr(1, e - 1);
    }
    size_t colon = h.find(':');
    if (colon != std::string::npos && h.find(':', colon + 1) == std::string::npos) h.resize(colon);
    while (!h.empty() && h.back() == '.') h.pop_back();
    return h;
}

}  // namespace

bool is_loopback_name(const std::string& h) {
    if (h == "localhost" || (h.size() > 10 && h.compare(h.size() - 10, 10, ".localhost") == 0)) return true;
    in_addr a4{};
    if (inet_pton(AF_INET, h.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    in6_addr a6{};
    if (inet_pton(AF_INET6, h.c_str(), &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return false;
}

bool Api::origin_listed(const std::string& origin) const {
    const std::string o = lower_ascii(origin);
    for (const std::string& allowed : opt_.cors_origins)
        if (allowed == "*" || lower_ascii(allowed) == o) return true;
    return false;
}

http::Refusal Api::admit(const http::Request& req) const {
    http::Refusal r;
    const std::string host = req.header("host");
    if (opt_.loopback_hosts_only && !host.empty()) {
        const std::string name = host_name(host);
        bool ok = is_loopback_name(name);
        for (const std::string& a : opt_.allowed_hosts) ok = ok || lower_ascii(a) == name;
        if (!ok) {
            r.status = 403;
            r.message = strprintf(
                "The Host header names '%s', but this server listens on loopback only and answers only to loopback "
                "names (this stops DNS rebinding). To accept that name, start it with --allowed-hosts %s.",
                name.c_str(), name.c_str());
            return r;
        }
    }
    const std::string origin = req.header("origin");
    if (!origin.empty() && !origin_listed(origin)) {
        // The server's own page is same-origin: its Origin is the address the browser asked for.
        const std::string o = lower_ascii(origin), h = lower_ascii(host);
        const bool same = !h.empty() && (o == "http://" + h || o == "https://" + h);
        if (!same) {
            r.status = 403;
            r.message = strprintf(
                "Cross-origin requests from '%s' are not allowed. To let pages from that origin use this server, start "
                "it with --cors-origins %s.",
                origin.c_str(), origin.c_str());
        }
    }
    return r;
}

Api::~Api() = default;

void Api::begin_shutdown() {
    std::lock_guard<std::mutex> lk(mu_);
    shutting_down_ = true;
    for (Generation* g : live_) g->cancel("shutdown");
}

int Api::generations_in_flight() const {
    std::lock_guard<std::mutex> lk(mu_);
    return (int)live_.size();
}

void Api::track(Generation* g, bool add) {
    std::lock_guard<std::mutex> lk(mu_);
    if (add) {
        if (shutting_down_) throw ApiError(503, "The server is shutting down.", "", "server_shutting_down");
        live_.insert(g);
    } else {
        live_.erase(g);
    }
}

bool Api::authorized(const http::Request& req) const {
    if (opt_.api_key.empty()) return true;
    std::string h = req.header("authorization");
    const std::string pfx = "bearer ";
    if (h.size() < pfx.size()) return false;
    for (size_t i = 0; i < pfx.size(); ++i)
        if (std::tolower((unsigned char)h[i]) != pfx[i]) return false;
    std::string key = h.substr(pfx.size());
    while (!key.empty() && key.front() == ' ') key.erase(0, 1);
    // Constant time in the key's content.
    unsigned diff = key.size() != opt_.api_key.size();
    for (size_t i = 0; i < opt_.api_key.size(); ++i) diff |= (unsigned)(i < key.size() ? key[i] : 0) ^ (unsigned)opt_.api_key[i];
    return diff == 0;
}

void Api::handle(const http::Request& req, http::Response& res) {
    // CORS only for the origins named with --cors-origins (none by default).
    const std::string origin = req.header("origin");
    const bool cors = !origin.empty() && origin_listed(origin);
    if (cors) {
        const bool any = std::find(opt_.cors_origins.begin(), opt_.cors_origins.end(), "*") != opt_.cors_origins.end();
        res.set_header("Access-Control-Allow-Origin", any ? "*" : origin);
        res.set_header("Vary", "Origin");
    }
    std::string endpoint = "other";
    metrics_.in_flight_delta(1);
    try {
        route(req, res, endpoint);
    } catch (const ApiError& e) {
        res.stream = nullptr;
        set_error(res, e);
    } catch (const std::bad_alloc&) {
        // Out of memory: the HTTP layer answers 503 with its prepared answer.
        metrics_.in_flight_delta(-1);
        throw;
    } catch (const std::exception& e) {
        res.stream = nullptr;
        set_error(res, ApiError(500, std::string("Internal error: ") + e.what(), "", "internal_error"));
    }
    metrics_.http_request(endpoint, res.status);
    if (!res.stream) {
        metrics_.in_flight_delta(-1);
        return;
    }
    // A streamed answer is in flight until its stream ends (or is dropped unsent).
    std::shared_ptr<void> done(nullptr, [this](void*) { metrics_.in_flight_delta(-1); });
    res.stream = [inner = std::move(res.stream), done](http::Stream& st) { inner(st); };
}

void Api::route(const http::Request& req, http::Response& res, std::string& endpoint) {
    std::string path = req.path;
    if (path.size() > 1 && path.back() == '/') path.pop_back();
    const std::string& m = req.method;

    if (m == "OPTIONS") {  // CORS preflight (answered in full only for listed origins)
        endpoint = "options";
        res.status = 204;
        res.set_header("Allow", "GET, POST, OPTIONS");
        if (!req.header("origin").empty() && origin_listed(req.header("origin"))) {
            res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Api-Key");
            res.set_header("Access-Control-Max-Age", "86400");
        }
        return;
    }
    std::string api = path;
    const bool v1 = api.rfind("/v1/", 0) == 0;
    if (v1) api = api.substr(3);
    auto need = [&](const char* method) {
        if (m == method || (std::string(method) == "GET" && m == "HEAD")) return;
        res.set_header("Allow", method);
        throw ApiError(405, strprintf("Method Not Allowed: %s %s accepts only %s.", m.c_str(), req.path.c_str(), method), "",
                       "method_not_allowed");
    };
    auto need_auth = [&] {
        if (authorized(req)) return;
        if (req.header("authorization").empty())
            throw ApiError(401,
                           "You didn't provide an API key. You need to provide your API key in an Authorization header "
                           "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                           "", "missing_api_key", "invalid_request_error");
        throw ApiError(401, "Incorrect API key provided.", "", "invalid_api_key", "invalid_request_error");
    };

    if (api == "/chat/completions") {
        endpoint = "/v1/chat/completions";
        need_auth();
        need("POST");
        return chat_completions(req, res);
    }
    if (api == "/completions") {
        endpoint = "/v1/completions";
        need_auth();
        need("POST");
        return completions(req, res);
    }
    if (api == "/models" || api.rfind("/models/", 0) == 0) {
        endpoint = "/v1/models";
        need_auth();
        need("GET");
        return models(res, api == "/models" ? "" : api.substr(8));
    }
    if (path == "/tokenize" || path == "/detokenize" || path == "/apply-template") {
        endpoint = path;
        need_auth();
        need("POST");
        return utility(req, res, path);
    }
    if (path == "/health" || path == "/v1/health") {
        endpoint = "/health";
        need("GET");
        auto st = eng_.stats();
        json j = json::object();
        j["status"] = shutting_down_ ? "shutting_down" : "ok";
        j["slots"] = eng_.options().n_parallel;
        j["active"] = st.active;
        j["queued"] = st.queue_depth;
        return set_json(res, shutting_down_ ? 503 : 200, j);
    }
    if (path == "/metrics") {
        endpoint = "/metrics";
        if (!opt_.metrics_public) need_auth();
        need("GET");
        Metrics::Gauges g;
        g.n_parallel = eng_.options().n_parallel;
        g.open_connections = connections_ ? connections_() : 0;
        if (http_gauges_) http_gauges_(g);
        res.body = metrics_.render(eng_.stats(), g);
        res.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        return;
    }
    if (path == "/" || path == "/index.html" || path == "/app.js" || path == "/app.css") {
        // The web page, its script and its styles (no authentication: nothing in them is private). The
        // page runs under a strict Content-Security-Policy; see webui.h.
        const bool js = path == "/app.js", css = path == "/app.css";
        endpoint = js || css ? path : "/";
        need("GET");
        res.body = js ? webui_script() : css ? webui_style() : webui_html();
        res.set_header("Content-Type", js    ? "text/javascript; charset=utf-8"
                                       : css ? "text/css; charset=utf-8"
                                             : "text/html; charset=utf-8");
        res.set_header("Cache-Control", "no-cache");
        res.set_header("Content-Security-Policy", webui_csp());
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_header("Referrer-Policy", "no-referrer");
        res.set_header("X-Frame-Options", "DENY");
        return;
    }
    if (path == "/favicon.ico") {
        endpoint = "/favicon.ico";
        res.status = 204;
        return;
    }
    throw ApiError(404, strprintf("Invalid URL (%s %s)", m.c_str(), req.path.c_str()), "", "not_found");
}

// llama.cpp-server-style helpers: /tokenize {"content", "add_special", "parse_special", "with_pieces"},
// /detokenize {"tokens"}, /apply-template {"messages"} -> {"prompt"}.
void Api::utility(const http::Request& req, http::Response& res, const std::string& path) {
    json b = parse_body(req.body, opt_.limits.max_json_depth);
    if (path == "/tokenize") {
        auto it = b.find("content");
        if (it == b.end() || !it->is_string())
            throw ApiError(400, "Missing required parameter: 'content' (a string).", "content", "missing_required_parameter");
        auto flag = [&](const char* k, bool def) {
            auto f = b.find(k);
            if (f == b.end() || f->is_null()) return def;
            if (!f->is_boolean()) throw ApiError(400, strprintf("Invalid type for '%s': expected a boolean.", k), k, "invalid_type");
            return f->get<bool>();
        };
        const bool add_special = flag("add_special", false), parse_special = flag("parse_special", true);
        const bool with_pieces = flag("with_pieces", false);
        std::vector<int32_t> ids = tok_.encode(it->get<std::string>(), add_special, parse_special);
        json toks = json::array();
        for (int32_t id : ids) {
            if (with_pieces)
                toks.push_back(json{{"id", id}, {"piece", tok_.token_to_piece(id, true)}});
            else
                toks.push_back(id);
        }
        return set_json(res, 200, json{{"tokens", toks}});
    }
    if (path == "/detokenize") {
        auto it = b.find("tokens");
        if (it == b.end() || !it->is_array())
            throw ApiError(400, "Missing required parameter: 'tokens' (an array of token ids).", "tokens", "missing_required_parameter");
        std::vector<int32_t> ids;
        for (auto& t : *it) {
            if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= tok_.n_vocab())
                throw ApiError(400, "Invalid 'tokens': every entry must be a token id of this model.", "tokens", "invalid_value");
            ids.push_back(t.get<int32_t>());
        }
        return set_json(res, 200, json{{"content", tok_.decode(ids)}});
    }
    ChatRequest cr = parse_chat_request(b, opt_.limits);
    return set_json(res, 200, json{{"prompt", render_chat(cr)}});
}

std::string Api::render_chat(const ChatRequest& cr) const {
    // Messages as the template sees them: text content, other fields passed through.
    json msgs = json::array();
    for (size_t i = 0; i < cr.messages.size(); ++i) {
        json m = json::object();
        const json& raw = cr.raw_messages[i];
        for (auto it = raw.begin(); it != raw.end(); ++it)
            if (it.key() != "content") m[it.key()] = it.value();
        m["content"] = cr.messages[i].content_null ? json(nullptr) : json(cr.messages[i].content);
        msgs.push_back(std::move(m));
    }
    try {
        return chat_.render(msgs, cr.add_generation_prompt, cr.template_kwargs);
    } catch (const Error& e) {
        throw ApiError(400, std::string("The chat template could not format these messages: ") + e.what(), "messages",
                       "invalid_messages");
    }
}

void Api::models(http::Response& res, const std::string& id) {
    const auto& hp = eng_.model().hparams();
    json mj = json::object();
    mj["id"] = opt_.model_id;
    mj["object"] = "model";
    mj["created"] = created_;
    mj["owned_by"] = "yiti";
    mj["meta"] = json{{"architecture", hp.arch},
                      {"n_vocab", hp.n_vocab},
                      {"n_ctx_train", hp.n_ctx_train},
                      {"n_ctx_per_seq", eng_.n_ctx_per_seq()},
                      {"n_embd", hp.n_embd},
                      {"n_layer", hp.n_layer}};
    if (!id.empty()) {
        if (id != opt_.model_id)
            throw ApiError(404, strprintf("The model '%s' does not exist.", id.c_str()), "model", "model_not_found");
        return set_json(res, 200, mj);
    }
    set_json(res, 200, json{{"object", "list"}, {"data", json::array({mj})}});
}

namespace {

ChoiceSpec base_spec(const GenParams& p) {
    ChoiceSpec s;
    s.sampling = p.sampling;
    s.ignore_eos = p.ignore_eos;
    s.stop = p.stop;
    s.want_logprobs = p.logprobs;
    s.top_logprobs = p.top_logprobs;
    return s;
}

// max_tokens within the context: a request may ask for more than fits (it then ends with
// "length" when the context is full), as llama.cpp's server does.
int64_t clamp_max_tokens(int64_t requested, int64_t n_prompt, int64_t n_ctx) {
    const int64_t room = n_ctx - n_prompt;
    return requested < 0 ? room : std::min(requested, room);
}

[[noreturn]] void too_long(int64_t n_prompt, int64_t n_ctx, const char* what) {
    throw ApiError(400,
                   strprintf("This model's maximum context length is %lld tokens. However, your %s resulted in %lld tokens. "
                             "Please reduce the length of the %s.",
                             (long long)n_ctx - 1, what, (long long)n_prompt, what),
                   std::string(what) == "messages" ? "messages" : "prompt", "context_length_exceeded");
}

// The same refusal, from the text's length alone (before tokenizing it).
[[noreturn]] void too_long_bytes(size_t bytes, int64_t at_least, int64_t n_ctx, const char* what) {
    throw ApiError(400,
                   strprintf("This model's maximum context length is %lld tokens. However, your %s %s %zu bytes long, "
                             "which is at least %lld tokens. Please reduce the length of the %s.",
                             (long long)n_ctx - 1, what, std::string(what) == "messages" ? "are" : "is", bytes,
                             (long long)at_least, what),
                   std::string(what) == "messages" ? "messages" : "prompt", "context_length_exceeded");
}

}  // namespace

std::shared_ptr<const engine::ConstraintVocab> Api::constraint_vocab() {
    std::lock_guard<std::mutex> lk(cv_mu_);
    if (!cv_) cv_ = engine::ConstraintVocab::build(sample::TokenVocab::from_tokenizer(tok_));
    return cv_;
}

std::shared_ptr<sample::MaskCache> Api::grammar_for(const ResponseFormat& rf) {
    if (rf.type == ResponseFormat::Type::Text) return nullptr;
    const bool any_object = rf.type == ResponseFormat::Type::JsonObject && rf.schema.is_null();
    const std::string key = any_object ? std::string("json_object") : "schema:" + rf.schema.dump();
    {
        std::lock_guard<std::mutex> lk(grammar_mu_);
        for (auto it = grammars_.begin(); it != grammars_.end(); ++it)
            if (it->first == key) {
                grammars_.splice(grammars_.begin(), grammars_, it);
                return it->second;
            }
    }
    std::shared_ptr<const sample::Grammar> g;
    const std::string what = rf.type == ResponseFormat::Type::JsonSchema
                                 ? (rf.name.empty() ? std::string("response_format") : "response_format '" + rf.name + "'")
                                 : std::string("response_format");
    const std::string param = rf.type == ResponseFormat::Type::JsonSchema ? "response_format.json_schema.schema"
                                                                          : "response_format.schema";
    try {
        g = any_object ? sample::json_object_grammar() : sample::json_schema_grammar(rf.schema);
    } catch (const sample::SchemaError& e) {
        // The message names the keyword and the JSON pointer of the schema that holds it.
        throw ApiError(400, strprintf("Invalid schema for %s: %s.", what.c_str(), e.what()), param, "invalid_json_schema");
    } catch (const sample::GrammarError& e) {
        throw ApiError(400, strprintf("Invalid schema for %s: %s", what.c_str(), e.what()), param, "invalid_json_schema");
    }
    auto cache = std::make_shared<sample::MaskCache>(std::move(g), constraint_vocab()->vocab);
    std::lock_guard<std::mutex> lk(grammar_mu_);
    for (auto& e : grammars_)
        if (e.first == key) return e.second;  // another request compiled it meanwhile
    grammars_.emplace_front(key, cache);
    if (grammars_.size() > kGrammarCacheSize) grammars_.pop_back();
    return cache;
}

std::shared_ptr<const engine::ConstraintSpec> Api::constraint_for(std::shared_ptr<sample::MaskCache> g, bool reasoning,
                                                                  bool start_in_reasoning) {
    if (!g) return nullptr;
    auto spec = std::make_shared<engine::ConstraintSpec>();
    spec->cache = std::move(g);
    spec->cv = constraint_vocab();
    // A reasoning model thinks freely first: the grammar starts after "</think>". A model whose
    // vocabulary has a "<think>" token may also open the block itself with its first token.
    if (reasoning && start_in_reasoning) spec->start = engine::ConstraintSpec::Start::AfterReasoning;
    else if (reasoning && spec->cv->open_token >= 0) spec->start = engine::ConstraintSpec::Start::OptionalReasoning;
    return spec;
}

void Api::chat_completions(const http::Request& req, http::Response& res) {
    const auto t0 = clock_type::now();
    json body = parse_body(req.body, opt_.limits.max_json_depth);
    ChatRequest cr = parse_chat_request(body, opt_.limits);
    std::shared_ptr<sample::MaskCache> grammar = grammar_for(cr.p.response_format);

    const std::string text = render_chat(cr);
    const int64_t n_ctx = eng_.n_ctx_per_seq();
    if (min_tokens(text.size()) >= n_ctx) too_long_bytes(text.size(), min_tokens(text.size()), n_ctx, "messages");
    const std::string& bos = chat_.bos_text();
    const bool add_bos = tok_.add_bos() && (bos.empty() || text.rfind(bos, 0) != 0);
    std::vector<int32_t> prompt = tok_.encode(text, add_bos, /*parse_special=*/true);
    if (prompt.empty()) throw ApiError(400, "The messages give an empty prompt.", "messages", "invalid_messages");
    if ((int64_t)prompt.size() >= n_ctx) too_long((int64_t)prompt.size(), n_ctx, "messages");

    // A prompt that ends inside an open <think> makes the answer start in the reasoning.
    const bool start_in_reasoning = prompt_ends_in_reasoning(text);
    const auto constraint = constraint_for(grammar, opt_.split_reasoning, start_in_reasoning);

    auto job = std::make_shared<GenJob>();
    job->kind = ResponseBuilder::Kind::Chat;
    job->p = cr.p;
    job->t0 = t0;
    job->prompt_tokens.push_back((int64_t)prompt.size());
    for (int i = 0; i < cr.p.n; ++i) {
        ChoiceSpec s = base_spec(cr.p);
        s.prompt = prompt;
        s.max_tokens = clamp_max_tokens(cr.p.max_tokens, (int64_t)prompt.size(), n_ctx);
        s.split_reasoning = opt_.split_reasoning;
        s.start_in_reasoning = opt_.split_reasoning && start_in_reasoning;
        s.constraint = constraint;
        if (cr.p.seed_given) s.sampling.seed = cr.p.sampling.seed + (uint64_t)i;
        job->specs.push_back(std::move(s));
    }
    job->echo.assign(job->specs.size(), "");
    run(req, res, job);
}

void Api::completions(const http::Request& req, http::Response& res) {
    const auto t0 = clock_type::now();
    json body = parse_body(req.body, opt_.limits.max_json_depth);
    CompletionRequest cr = parse_completion_request(body, opt_.limits);
    const auto constraint = constraint_for(grammar_for(cr.p.response_format), false, false);
    const int64_t n_ctx = eng_.n_ctx_per_seq();
    auto job = std::make_shared<GenJob>();
    job->kind = ResponseBuilder::Kind::Completion;
    job->p = cr.p;
    job->t0 = t0;
    // Prompts that cannot fit are refused before any of them is tokenized.
    for (const PromptInput& in : cr.prompts)
        if (!in.is_tokens && min_tokens(in.text.size()) >= n_ctx)
            too_long_bytes(in.text.size(), min_tokens(in.text.size()), n_ctx, "prompt");
    for (size_t pi = 0; pi < cr.prompts.size(); ++pi) {
        const PromptInput& in = cr.prompts[pi];
        std::vector<int32_t> prompt = in.is_tokens ? in.tokens : tok_.encode(in.text, true, true);
        const std::string param = cr.prompts.size() > 1 ? strprintf("prompt[%zu]", pi) : "prompt";
        if (prompt.empty())
            throw ApiError(400, strprintf("Invalid '%s': the prompt is empty.", param.c_str()), param, "invalid_value");
        if ((int64_t)prompt.size() >= n_ctx) too_long((int64_t)prompt.size(), n_ctx, "prompt");
        job->prompt_tokens.push_back((int64_t)prompt.size());
        const std::string echo = cr.echo ? (in.is_tokens ? tok_.decode(in.tokens) : in.text) : "";
        for (int i = 0; i < cr.p.n; ++i) {
            ChoiceSpec s = base_spec(cr.p);
            s.prompt = prompt;
            s.max_tokens = clamp_max_tokens(cr.p.max_tokens, (int64_t)prompt.size(), n_ctx);
            s.continuation = true;
            s.constraint = constraint;
            if (cr.p.seed_given) s.sampling.seed = cr.p.sampling.seed + (uint64_t)job->specs.size();
            job->specs.push_back(std::move(s));
            job->echo.push_back(echo);
        }
    }
    run(req, res, job);
}

namespace {

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

std::string log_note(const Usage& u, const std::vector<std::string>& reasons, double ttft) {
    std::string r;
    for (auto& x : reasons) r += (r.empty() ? "" : ",") + x;
    std::string s = strprintf("prompt=%lld cached=%lld gen=%lld finish=%s", (long long)u.prompt_tokens,
                              (long long)u.cached_tokens, (long long)u.completion_tokens, r.c_str());
    if (ttft >= 0) s += strprintf(" ttft=%.0fms", ttft * 1000);
    return s;
}

}  // namespace

void Api::run(const http::Request& req, http::Response& res, std::shared_ptr<GenJob> job) {
    const GenParams& p = job->p;
    job->rb = std::make_unique<ResponseBuilder>(job->kind, tok_, opt_.model_id, p.logprobs, p.top_logprobs);
    job->rb->set_include_usage(p.include_usage);
    auto gen = std::make_shared<Generation>(eng_, tok_, job->t0);
    track(gen.get(), true);
    // Keeps the generation registered (for shutdown) while anything still uses it.
    struct Tracker {
        Api* api;
        std::shared_ptr<Generation> g;
        ~Tracker() { api->track(g.get(), false); }
    };
    std::shared_ptr<Tracker> untrack(new Tracker{this, gen});
    try {
        gen->start(job->specs);
    } catch (const Error& e) {
        throw ApiError(400, e.what(), "", "invalid_request");
    }

    // Bookkeeping shared by both answer forms.
    struct Tally {
        Usage u;
        std::vector<ChoiceResult> results;
        std::vector<std::string> reasons;
        double first_ttft = -1;
    };
    auto tally = std::make_shared<Tally>();
    tally->results.resize(job->specs.size());
    for (auto n : job->prompt_tokens) tally->u.prompt_tokens += n;
    auto account = [this, tally, job](const ChoiceDelta& d) {
        auto& r = tally->results[(size_t)d.index];
        r.finished = true;
        r.finish_reason = d.finish_reason;
        r.error = d.error;
        r.n_generated = d.n_generated;
        r.n_cached = d.n_cached;
        tally->u.completion_tokens += d.n_generated;
        // Cached prompt tokens: once per prompt (its first choice).
        if ((size_t)d.index % (size_t)job->p.n == 0) tally->u.cached_tokens += d.n_cached;
        tally->reasons.push_back(d.finish_reason);
        metrics_.completion_finished(d.finish_reason, d.n_prompt, d.n_generated);
        if (d.ttft_s >= 0) {
            metrics_.time_to_first_token(d.ttft_s);
            if (tally->first_ttft < 0 || d.ttft_s < tally->first_ttft) tally->first_ttft = d.ttft_s;
        }
        if (d.tpot_s >= 0) metrics_.time_per_output_token(d.tpot_s);
    };

    if (!p.stream) {
        std::vector<ChoiceDelta> ds;
        while (!gen->finished()) {
            ds.clear();
            gen->wait(ds, 100);
            for (auto& d : ds) {
                auto& r = tally->results[(size_t)d.index];
                r.content += d.content;
                r.reasoning += d.reasoning;
                for (auto& lp : d.logprobs) r.logprobs.push_back(std::move(lp));
                if (d.finished) account(d);
            }
            if (!gen->finished() && req.client_gone && req.client_gone()) gen->cancel("client_gone");
        }
        metrics_.request_duration(std::chrono::duration<double>(clock_type::now() - job->t0).count());
        res.log_note = log_note(tally->u, tally->reasons, tally->first_ttft);
        const std::string why = gen->cancel_reason();
        if (why == "shutdown") throw ApiError(503, "The server is shutting down.", "", "server_shutting_down");
        if (why == "client_gone") throw ApiError(499, "The client closed the connection.", "", "client_closed");
        for (auto& r : tally->results)
            if (r.finish_reason == "error")
                throw ApiError(500, "The generation failed: " + r.error, "", "generation_failed");
        const json out = job->kind == ResponseBuilder::Kind::Chat ? job->rb->chat_completion(tally->results, tally->u)
                                                                  : job->rb->text_completion(tally->results, tally->u, job->echo);
        set_json(res, 200, out);
        return;
    }

    // Streaming: server-sent events, written from this thread as the deltas arrive.
    res.status = 200;
    res.set_header("Content-Type", "text/event-stream; charset=utf-8");
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    http::Response* resp = &res;
    const int keepalive_ms = opt_.sse_keepalive_seconds * 1000;
    res.stream = [this, gen, job, tally, account, untrack, resp, keepalive_ms](http::Stream& st) {
        ResponseBuilder& rb = *job->rb;
        const bool chat = job->kind == ResponseBuilder::Kind::Chat;
        bool alive = true;
        auto send = [&](const std::string& s) {
            if (alive && !st.write(s)) {
                alive = false;
                gen->cancel("client_gone");
            }
        };
        std::vector<size_t> offsets(job->specs.size(), 0);  // completion text offsets so far
        for (size_t i = 0; i < job->specs.size(); ++i) {
            if (chat) send(sse(rb.chat_role_chunk((int)i)));
            if (!chat && !job->echo[i].empty()) {
                send(sse(rb.text_chunk((int)i, job->echo[i], {}, 0, nullptr)));
                offsets[i] = job->echo[i].size();
            }
        }
        auto last_write = clock_type::now();
        std::vector<ChoiceDelta> ds;
        std::string failure;  // an error event to end the stream with
        while (!gen->finished()) {
            ds.clear();
            if (!gen->wait(ds, 100)) {
                if (alive && st.client_gone()) {
                    alive = false;
                    gen->cancel("client_gone");
                }
                if (alive && clock_type::now() - last_write > std::chrono::milliseconds(keepalive_ms)) {
                    send(": keep-alive\n\n");
                    last_write = clock_type::now();
                }
                continue;
            }
            for (auto& d : ds) {
                const bool has_text = !d.content.empty() || !d.reasoning.empty() || !d.logprobs.empty();
                if (has_text) {
                    if (chat) {
                        send(sse(rb.chat_delta_chunk(d.index, d.content, d.reasoning, d.logprobs)));
                    } else {
                        send(sse(rb.text_chunk(d.index, d.content, d.logprobs, job->echo[(size_t)d.index].size(), nullptr)));
                    }
                    offsets[(size_t)d.index] += d.content.size();
                }
                if (!d.finished) continue;
                account(d);
                if (d.finish_reason == "error") {
                    failure = "The generation failed: " + d.error;
                } else if (d.finish_reason == "cancelled") {
                    if (failure.empty()) failure = "The generation was cancelled.";
                } else if (chat) {
                    send(sse(rb.chat_finish_chunk(d.index, d.finish_reason)));
                } else {
                    send(sse(rb.text_chunk(d.index, "", {}, 0, ResponseBuilder::wire_finish_reason(d.finish_reason))));
                }
            }
            last_write = clock_type::now();
        }
        const std::string why = gen->cancel_reason();
        if (why == "shutdown") failure = "The server is shutting down; the generation was stopped.";
        if (!failure.empty()) {
            ApiError e(why == "shutdown" ? 503 : 500, failure, "", why == "shutdown" ? "server_shutting_down" : "generation_failed");
            send(sse(error_object(e)));
        } else if (job->p.include_usage) {
            send(sse(rb.usage_chunk(tally->u)));
        }
        send("data: [DONE]\n\n");
        metrics_.request_duration(std::chrono::duration<double>(clock_type::now() - job->t0).count());
        resp->log_note = log_note(tally->u, tally->reasons, tally->first_ttft) + (alive ? "" : " client_gone");
    };
}

}  // namespace yiti::server
