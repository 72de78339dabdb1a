// Server metrics in the Prometheus text exposition format (version 0.0.4): HTTP requests by
// endpoint and status, completions by finish reason, histograms of time to first token and time
// per output token measured at the server, and the engine's counters and gauges.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace yiti::server {

class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double v);
    // Appends the _bucket, _sum and _count lines of metric `name`.
    void render(std::string& out, const std::string& name) const;

private:
    std::vector<double> bounds_;
    std::vector<uint64_t> counts_;  // per bucket (not cumulative), last one is +Inf
    double sum_ = 0;
    uint64_t count_ = 0;
};

class Metrics {
public:
    Metrics();
    void http_request(const std::string& endpoint, int status);
    void completion_finished(const std::string& finish_reason, int64_t prompt_tokens, int64_t completion_tokens);
    void time_to_first_token(double seconds);
    void time_per_output_token(double seconds);
    void request_duration(double seconds);
    void in_flight_delta(int d);

    struct Gauges {
        int n_parallel = 0;
        int open_connections = 0;
        size_t buffered_body_bytes = 0;
        // What the HTTP layer ended itself, by reason (timeout, over_capacity, malformed, refused, idle_evicted).
        std::vector<std::pair<std::string, uint64_t>> http_ended;
    };
    std::string render(const engine::EngineStats& es, const Gauges& g) const;

private:
    mutable std::mutex mu_;
    std::map<std::pair<std::string, int>, uint64_t> http_;
    std::map<std::string, uint64_t> finished_;
    uint64_t prompt_tokens_ = 0, completion_tokens_ = 0;
    int in_flight_ = 0;
    Histogram ttft_, tpot_, duration_;
};

// "a\"b" for label values.
std::string prom_escape(const std::string& s);

}  // namespace yiti::server
