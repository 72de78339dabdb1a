#include "server/metrics.h"

#include <cmath>

#include "core/error.h"

namespace yiti::server {

namespace {

std::string num(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (v == std::floor(v) && std::fabs(v) < 1e15) return strprintf("%.0f", v);
    return strprintf("%.9g", v);
}

void family(std::string& out, const std::string& name, const char* type, const char* help) {
    out += "# HELP " + name + " " + help + "\n";
    out += "# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, double v, const std::string& labels = "") {
    out += name;
    if (!labels.empty()) out += "{" + labels + "}";
    out += " " + num(v) + "\n";
}

}  // namespace

std::string prom_escape(const std::string& s) {
    std::string r;
    for (char c : s) {
        if (c == '\\')
            r += "\\\\";
        else if (c == '"')
            r += "\\\"";
        else if (c == '\n')
            r += "\\n";
        else
            r += c;
    }
    return r;
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
    if (!std::isfinite(v) || v < 0) return;
    size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    counts_[i]++;
    sum_ += v;
    count_++;
}

void Histogram::render(std::string& out, const std::string& name) const {
    uint64_t cum = 0;
    for (size_t i = 0; i < bounds_.size(); ++i) {
        cum += counts_[i];
        sample(out, name + "_bucket", (double)cum, "le=\"" + num(bounds_[i]) + "\"");
    }
    cum += counts_.back();
    sample(out, name + "_bucket", (double)cum, "le=\"+Inf\"");
    sample(out, name + "_sum", sum_);
    sample(out, name + "_count", (double)count_);
}

Metrics::Metrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      tpot_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      duration_({0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}) {}

void Metrics::http_request(const std::string& endpoint, int status) {
    std::lock_guard<std::mutex> lk(mu_);
    http_[{endpoint, status}]++;
}

void Metrics::completion_finished(const std::string& reason, int64_t prompt_tokens, int64_t completion_tokens) {
    std::lock_guard<std::mutex> lk(mu_);
    finished_[reason]++;
    prompt_tokens_ += (uint64_t)std::max<int64_t>(0, prompt_tokens);
    completion_tokens_ += (uint64_t)std::max<int64_t>(0, completion_tokens);
}

void Metrics::time_to_first_token(double s) {
    std::lock_guard<std::mutex> lk(mu_);
    ttft_.observe(s);
}

void Metrics::time_per_output_token(double s) {
    std::lock_guard<std::mutex> lk(mu_);
    tpot_.observe(s);
}

void Metrics::request_duration(double s) {
    std::lock_guard<std::mutex> lk(mu_);
    duration_.observe(s);
}

void Metrics::in_flight_delta(int d) {
    std::lock_guard<std::mutex> lk(mu_);
    in_flight_ += d;
}

std::string Metrics::render(const engine::EngineStats& es, const Gauges& g) const {
    std::lock_guard<std::mutex> lk(mu_);
    std::string o;
    o.reserve(8192);

    family(o, "yiti_http_requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
    for (auto& [k, v] : http_)
        sample(o, "yiti_http_requests_total", (double)v,
               "endpoint=\"" + prom_escape(k.first) + "\",status=\"" + std::to_string(k.second) + "\"");
    family(o, "yiti_http_requests_in_flight", "gauge", "HTTP requests being answered now.");
    sample(o, "yiti_http_requests_in_flight", in_flight_);
    family(o, "yiti_http_connections_open", "gauge", "Open client connections.");
    sample(o, "yiti_http_connections_open", g.open_connections);
    family(o, "yiti_http_body_bytes_buffered", "gauge", "Bytes of request bodies being received (counted against the budget).");
    sample(o, "yiti_http_body_bytes_buffered", (double)g.buffered_body_bytes);
    family(o, "yiti_http_connections_ended_total", "counter",
           "Requests and connections the HTTP layer ended itself, by reason (timeout: 408; over_capacity: 503; "
           "malformed: not valid HTTP; refused: Host or Origin not allowed; idle_evicted: idle connection closed to make room).");
    for (auto& [reason, n] : g.http_ended)
        sample(o, "yiti_http_connections_ended_total", (double)n, "reason=\"" + prom_escape(reason) + "\"");

    family(o, "yiti_completions_total", "counter", "Generated choices that finished, by finish reason.");
    for (const char* r : {"stop", "length", "cancelled", "error"}) {
        auto it = finished_.find(r);
        sample(o, "yiti_completions_total", it == finished_.end() ? 0.0 : (double)it->second,
               std::string("finish_reason=\"") + r + "\"");
    }
    family(o, "yiti_prompt_tokens_total", "counter", "Prompt tokens of finished requests (tokens in).");
    sample(o, "yiti_prompt_tokens_total", (double)prompt_tokens_);
    family(o, "yiti_completion_tokens_total", "counter", "Generated tokens of finished requests (tokens out).");
    sample(o, "yiti_completion_tokens_total", (double)completion_tokens_);

    family(o, "yiti_time_to_first_token_seconds", "histogram", "Time from a request's arrival to its first generated token.");
    ttft_.render(o, "yiti_time_to_first_token_seconds");
    family(o, "yiti_time_per_output_token_seconds", "histogram", "Mean time between generated tokens after the first, per request.");
    tpot_.render(o, "yiti_time_per_output_token_seconds");
    family(o, "yiti_request_duration_seconds", "histogram", "Time to answer a generation request.");
    duration_.render(o, "yiti_request_duration_seconds");

    family(o, "yiti_engine_requests_total", "counter", "Sequences accepted by the engine.");
    sample(o, "yiti_engine_requests_total", (double)es.requests_total);
    family(o, "yiti_engine_requests_finished_total", "counter", "Sequences the engine finished (any reason).");
    sample(o, "yiti_engine_requests_finished_total", (double)es.requests_finished);
    family(o, "yiti_engine_requests_cancelled_total", "counter", "Sequences cancelled (client gone, stop string, shutdown).");
    sample(o, "yiti_engine_requests_cancelled_total", (double)es.requests_cancelled);
    family(o, "yiti_engine_requests_errored_total", "counter", "Sequences that failed.");
    sample(o, "yiti_engine_requests_errored_total", (double)es.requests_errored);
    family(o, "yiti_engine_prompt_tokens_total", "counter", "Prompt tokens computed (not counting prefix-cache hits).");
    sample(o, "yiti_engine_prompt_tokens_total", (double)es.prompt_tokens_total);
    family(o, "yiti_engine_cached_prompt_tokens_total", "counter", "Prompt tokens reused from the prefix cache.");
    sample(o, "yiti_engine_cached_prompt_tokens_total", (double)es.cached_tokens_total);
    family(o, "yiti_engine_generated_tokens_total", "counter", "Tokens sampled by the engine.");
    sample(o, "yiti_engine_generated_tokens_total", (double)es.generated_tokens_total);
    family(o, "yiti_engine_steps_total", "counter", "Batched forward passes.");
    sample(o, "yiti_engine_steps_total", (double)es.steps_total);
    family(o, "yiti_engine_time_to_first_token_seconds", "summary", "Engine-side time from submission to first token.");
    sample(o, "yiti_engine_time_to_first_token_seconds_sum", es.ttft_seconds_sum);
    sample(o, "yiti_engine_time_to_first_token_seconds_count", (double)es.ttft_count);
    family(o, "yiti_engine_time_per_output_token_seconds", "summary", "Engine-side time between tokens after the first.");
    sample(o, "yiti_engine_time_per_output_token_seconds_sum", es.tpot_seconds_sum);
    sample(o, "yiti_engine_time_per_output_token_seconds_count", (double)es.tpot_count);

    family(o, "yiti_queue_depth", "gauge", "Requests waiting for a slot or for cache space.");
    sample(o, "yiti_queue_depth", es.queue_depth);
    family(o, "yiti_active_sequences", "gauge", "Sequences being processed.");
    sample(o, "yiti_active_sequences", es.active);
    family(o, "yiti_parallel_slots", "gauge", "Sequences decoded together at most.");
    sample(o, "yiti_parallel_slots", g.n_parallel);
    family(o, "yiti_kv_cache_tokens_capacity", "gauge", "KV cache capacity in tokens.");
    sample(o, "yiti_kv_cache_tokens_capacity", (double)es.kv_tokens_capacity);
    family(o, "yiti_kv_cache_tokens_used", "gauge", "KV cache slots in use (sequences and prefix cache).");
    sample(o, "yiti_kv_cache_tokens_used", (double)es.kv_tokens_used);
    family(o, "yiti_kv_cache_usage_ratio", "gauge", "Fraction of the KV cache in use.");
    sample(o, "yiti_kv_cache_usage_ratio",
           es.kv_tokens_capacity > 0 ? (double)es.kv_tokens_used / (double)es.kv_tokens_capacity : 0.0);
    return o;
}

}  // namespace yiti::server
