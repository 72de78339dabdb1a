// Server pieces that need no model: stop strings, request validation, error objects, Prometheus
// text, the HTTP server and client (bodies, limits, streaming, disconnects) and SSE parsing.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "server/api.h"
#include "server/http.h"
#include "server/http_client.h"
#include "server/metrics.h"
#include "server/oai_request.h"
#include "server/stop_matcher.h"

using namespace yiti::server;

namespace {

std::string feed_all(StopMatcher& m, const std::vector<std::string>& pieces) {
    std::string out;
    for (auto& p : pieces) out += m.push(p);
    return out + m.flush();
}

}  // namespace

TEST(ServerStop, MatchesAcrossPiecesAndHoldsBackPrefixes) {
    StopMatcher m({"END"});
    EXPECT_EQ(m.push("hello E"), "hello ");  // "E" might start the stop string
    EXPECT_EQ(m.held(), 1u);
    EXPECT_EQ(m.push("N"), "");
    EXPECT_EQ(m.push("Dmore"), "");
    EXPECT_TRUE(m.matched());
    EXPECT_EQ(m.matched_stop(), "END");
    EXPECT_EQ(m.push("x"), "");
    EXPECT_EQ(m.flush(), "");
    EXPECT_EQ(m.released(), 6u);
}

TEST(ServerStop, FalseStartsAreReleased) {
    StopMatcher m({"END"});
    EXPECT_EQ(feed_all(m, {"a E", "Nx", " EN"}), "a ENx EN");
    EXPECT_FALSE(m.matched());
}

TEST(ServerStop, EarliestStopWins) {
    StopMatcher m({"cd", "bcx", "b"});
    EXPECT_EQ(feed_all(m, {"a", "bcd"}), "a");
    EXPECT_EQ(m.matched_stop(), "b");
    StopMatcher n({"world", "or"});
    EXPECT_EQ(feed_all(n, {"hello w", "orld"}), "hello ");  // "world" starts first
    EXPECT_EQ(n.matched_stop(), "world");
}

TEST(ServerStop, NoStopsPassThrough) {
    StopMatcher m{std::vector<std::string>{}};
    EXPECT_EQ(m.push("abc"), "abc");
    EXPECT_EQ(m.held(), 0u);
}

TEST(ServerStop, Utf8StopStrings) {
    StopMatcher m({"élan"});
    std::string out = m.push("un \xc3");  // first byte of é
    out += m.push("\xa9la");
    EXPECT_EQ(out, "un ");
    out += m.push("n vital");
    EXPECT_EQ(out, "un ");
    EXPECT_TRUE(m.matched());
}

namespace {

int status_of(const std::function<void()>& f, std::string* param = nullptr, std::string* code = nullptr) {
    try {
        f();
    } catch (const ApiError& e) {
        if (param) *param = e.param;
        if (code) *code = e.code;
        return e.status;
    }
    return 200;
}

}  // namespace

TEST(ServerRequest, ChatDefaultsAndFields) {
    RequestLimits lim;
    auto r = parse_chat_request(json::parse(R"({"model": "x", "messages": [{"role": "system", "content": "S"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": null}], "max_tokens": 5, "stop": "\n", "seed": 3, "temperature": 0,
        "logprobs": true, "top_logprobs": 2, "stream": true, "stream_options": {"include_usage": true}})"),
                                lim);
    EXPECT_EQ(r.p.model, "x");
    ASSERT_EQ(r.messages.size(), 3u);
    EXPECT_EQ(r.messages[1].content, "ab");
    EXPECT_TRUE(r.messages[2].content_null);
    EXPECT_EQ(r.p.max_tokens, 5);
    EXPECT_EQ(r.p.stop, std::vector<std::string>{"\n"});
    EXPECT_EQ(r.p.sampling.seed, 3u);
    EXPECT_EQ(r.p.sampling.temperature, 0.0f);
    EXPECT_TRUE(r.p.logprobs);
    EXPECT_EQ(r.p.top_logprobs, 2);
    EXPECT_TRUE(r.p.stream && r.p.include_usage);

    auto d = parse_chat_request(json::parse(R"({"messages": [{"role": "user", "content": "hi"}]})"), lim);
    EXPECT_EQ(d.p.max_tokens, -1);
    EXPECT_EQ(d.p.sampling.temperature, 1.0f);
    EXPECT_EQ(d.p.sampling.top_p, 1.0f);
    EXPECT_EQ(d.p.sampling.top_k, 0);
    EXPECT_EQ(d.p.sampling.min_p, 0.0f);
    EXPECT_FALSE(d.p.seed_given);
    // max_completion_tokens wins over max_tokens.
    auto m = parse_chat_request(
        json::parse(R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 9, "max_completion_tokens": 4})"), lim);
    EXPECT_EQ(m.p.max_tokens, 4);
}

TEST(ServerRequest, ChatErrorsNameTheParameter) {
    RequestLimits lim;
    auto check = [&](const char* body, const char* want_param, const char* want_code) {
        std::string param, code;
        EXPECT_EQ(status_of([&] { parse_chat_request(json::parse(body), lim); }, &param, &code), 400) << body;
        EXPECT_EQ(param, want_param) << body;
        EXPECT_EQ(code, want_code) << body;
    };
    check(R"({})", "messages", "missing_required_parameter");
    check(R"({"messages": []})", "messages", "empty_array");
    check(R"({"messages": {}})", "messages", "invalid_type");
    check(R"({"messages": [{"role": "user", "content": "x"}], "temperature": 3})", "temperature", "decimal_above_max_value");
    check(R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})", "max_tokens", "integer_below_min_value");
    check(R"({"messages": [{"role": "user", "content": "x"}], "n": 0})", "n", "integer_below_min_value");
    check(R"({"messages": [{"role": "user", "content": "x"}], "stop": [1]})", "stop[0]", "invalid_type");
    check(R"({"messages": [{"role": "bot", "content": "x"}]})", "messages[0].role", "invalid_value");
    check(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 1})", "top_logprobs", "invalid_value");
    check(R"({"messages": [{"role": "user", "content": "x"}], "stream_options": {}})", "stream_options", "invalid_value");
    check(R"({"messages": [{"role": "user", "content": "x"}], "temperature": null, "top_p": "1"})", "top_p", "invalid_type");
}

TEST(ServerRequest, CompletionPrompts) {
    RequestLimits lim;
    lim.n_vocab = 100;
    auto a = parse_completion_request(json::parse(R"({"prompt": "hi"})"), lim);
    ASSERT_EQ(a.prompts.size(), 1u);
    EXPECT_EQ(a.prompts[0].text, "hi");
    EXPECT_EQ(a.p.max_tokens, 16);  // OpenAI's default for completions
    auto b = parse_completion_request(json::parse(R"({"prompt": [1, 2, 3], "logprobs": 2, "echo": true})"), lim);
    ASSERT_EQ(b.prompts.size(), 1u);
    EXPECT_TRUE(b.prompts[0].is_tokens);
    EXPECT_EQ(b.prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));
    EXPECT_TRUE(b.p.logprobs && b.echo);
    EXPECT_EQ(b.p.top_logprobs, 2);
    auto c = parse_completion_request(json::parse(R"({"prompt": ["a", [5, 6]], "n": 2})"), lim);
    EXPECT_EQ(c.prompts.size(), 2u);
    std::string param, code;
    EXPECT_EQ(status_of([&] { parse_completion_request(json::parse(R"({"prompt": [1, 100]})"), lim); }, &param, &code), 400);
    EXPECT_EQ(param, "prompt");
    EXPECT_EQ(status_of([&] { parse_completion_request(json::parse(R"({"prompt": [[]]})"), lim); }), 400);
    EXPECT_EQ(status_of([&] { parse_completion_request(json::parse(R"({"prompt": null})"), lim); }), 400);
    EXPECT_EQ(status_of([&] { parse_completion_request(json::parse(R"({"prompt": "x", "best_of": 3})"), lim); }), 400);
}

TEST(ServerRequest, BodiesAndErrorObjects) {
    EXPECT_EQ(status_of([] { parse_body("{"); }), 400);
    EXPECT_EQ(status_of([] { parse_body("[]"); }), 400);
    EXPECT_EQ(status_of([] { parse_body(""); }), 400);
    EXPECT_NO_THROW(parse_body(R"({"a": 1})"));
    ApiError e(401, "no key", "", "invalid_api_key");
    json j = json::parse(error_body(e));
    EXPECT_EQ(j["error"]["message"], "no key");
    EXPECT_EQ(j["error"]["type"], "authentication_error");
    EXPECT_TRUE(j["error"]["param"].is_null());
    EXPECT_EQ(j["error"]["code"], "invalid_api_key");
    // Invalid UTF-8 never makes serialization throw.
    EXPECT_NO_THROW(dump(json{{"x", std::string("a\xff")}}));
}

TEST(ServerRequest, NestingAndNumbersOutOfRange) {
    EXPECT_EQ(json_nesting_depth("{}", 10), 1u);
    EXPECT_EQ(json_nesting_depth(R"({"a": [1, {"b": [[]]}]})", 10), 5u);
    // Brackets inside strings (escaped quotes included) are text, not nesting.
    EXPECT_EQ(json_nesting_depth(R"({"a": "[[[{{{", "b": "\"[[[", "c": "\\"})", 10), 1u);
    // Counting stops once past the limit.
    EXPECT_EQ(json_nesting_depth(std::string(100000, '['), 64), 65u);
    std::string deep = "{\"a\":" + std::string(129, '[') + std::string(129, ']') + "}";
    EXPECT_EQ(status_of([&] { parse_body(deep, 128); }), 400);
    EXPECT_NO_THROW(parse_body(deep, 130));
    std::string huge = "{\"a\":" + std::string(200000, '[') + std::string(200000, ']') + "}";
    EXPECT_EQ(status_of([&] { parse_body(huge); }), 400);
    // Numbers beyond a double are the client's error (nlohmann reports them as out_of_range).
    EXPECT_EQ(status_of([] { parse_body(R"({"temperature": 1e400})"); }), 400);
    EXPECT_EQ(status_of([] { parse_body(R"({"temperature": -1e400})"); }), 400);
}

TEST(ServerMetrics, PrometheusText) {
    Metrics m;
    m.http_request("/v1/chat/completions", 200);
    m.http_request("/v1/chat/completions", 200);
    m.http_request("/x\"y", 404);
    m.completion_finished("stop", 10, 5);
    m.time_to_first_token(0.03);
    m.time_per_output_token(0.002);
    yiti::engine::EngineStats es;
    es.kv_tokens_capacity = 100;
    es.kv_tokens_used = 25;
    Metrics::Gauges g;
    g.n_parallel = 4;
    g.open_connections = 1;
    g.buffered_body_bytes = 1234;
    g.http_ended = {{"timeout", 3}, {"over_capacity", 0}};
    std::string t = m.render(es, g);
    EXPECT_NE(t.find("yiti_http_body_bytes_buffered 1234\n"), std::string::npos);
    EXPECT_NE(t.find("yiti_http_connections_ended_total{reason=\"timeout\"} 3\n"), std::string::npos);
    EXPECT_NE(t.find("# TYPE yiti_http_requests_total counter\n"), std::string::npos);
    EXPECT_NE(t.find("yiti_http_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 2\n"), std::string::npos);
    EXPECT_NE(t.find("endpoint=\"/x\\\"y\""), std::string::npos);
    EXPECT_NE(t.find("yiti_time_to_first_token_seconds_bucket{le=\"0.05\"} 1\n"), std::string::npos);
    EXPECT_NE(t.find("yiti_time_to_first_token_seconds_bucket{le=\"0.025\"} 0\n"), std::string::npos);
    EXPECT_NE(t.find("yiti_time_to_first_token_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos);
    EXPECT_NE(t.find("yiti_kv_cache_usage_ratio 0.25\n"), std::string::npos);
    EXPECT_NE(t.find("yiti_completions_total{finish_reason=\"stop\"} 1\n"), std::string::npos);
    EXPECT_NE(t.find("yiti_completion_tokens_total 5\n"), std::string::npos);
    // Every line is a comment or "name{labels} value".
    size_t pos = 0;
    while (pos < t.size()) {
        size_t e = t.find('\n', pos);
        ASSERT_NE(e, std::string::npos);
        std::string line = t.substr(pos, e - pos);
        pos = e + 1;
        if (line.rfind("# ", 0) == 0) continue;
        size_t sp = line.rfind(' ');
        ASSERT_NE(sp, std::string::npos) << line;
        std::string v = line.substr(sp + 1);
        EXPECT_TRUE(v == "+Inf" || v == "NaN" || std::strtod(v.c_str(), nullptr) == std::strtod(v.c_str(), nullptr)) << line;
    }
}

namespace {

// A server on a free port running in a thread.
struct TestServer {
    http::Server srv;
    std::thread th;
    TestServer(http::Handler h, http::ServerOptions o = {}) : srv(std::move(h), [&] {
        o.log_requests = false;
        return o;
    }()) {
        srv.bind("127.0.0.1", 0);
        th = std::thread([this] { srv.run(); });
    }
    ~TestServer() {
        srv.interrupt();
        th.join();
        srv.stop(2000);
    }
    http::Client client() { return http::Client("127.0.0.1", srv.port(), 10); }
};

}  // namespace

TEST(ServerHttp, RequestsBodiesAndLimits) {
    http::ServerOptions o;
    o.max_body_bytes = 1000;
    TestServer ts(
        [](const http::Request& rq, http::Response& rs) {
            rs.body = rq.method + " " + rq.path + " q=" + rq.query + " len=" + std::to_string(rq.body.size()) +
                      " h=" + rq.header("x-test");
            rs.set_header("Content-Type", "text/plain");
        },
        o);
    auto c = ts.client();
    auto r = c.request("GET", "/a/b?x=1", "", {{"X-Test", "v"}});
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "GET /a/b q=x=1 len=0 h=v");
    r = c.request("POST", "/p", std::string(500, 'x'));
    EXPECT_EQ(r.body, "POST /p q= len=500 h=");
    r = c.request("POST", "/p", std::string(5000, 'x'));
    EXPECT_EQ(r.status, 413);
    EXPECT_NE(r.body.find("\"error\""), std::string::npos);
    EXPECT_EQ(ts.client().request("GET", "/after").status, 200);
}

TEST(ServerHttp, StreamingAndDisconnect) {
    std::atomic<bool> saw_gone{false};
    std::atomic<int> written{0};
    TestServer ts([&](const http::Request& rq, http::Response& rs) {
        rs.set_header("Content-Type", "text/event-stream");
        if (rq.path == "/short") {
            rs.stream = [](http::Stream& st) {
                for (int i = 0; i < 3; ++i) st.write("data: " + std::to_string(i) + "\n\n");
                st.write("data: [DONE]\n\n");
            };
            return;
        }
        rs.stream = [&](http::Stream& st) {
            for (int i = 0; i < 2000; ++i) {
                if (!st.write("data: tick\n\n") || st.client_gone()) {
                    saw_gone = true;
                    return;
                }
                written++;
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        };
    });
    std::vector<std::string> events;
    http::SseParser sse;
    auto r = ts.client().request("GET", "/short", "", {}, [&](std::string_view d) {
        sse.feed(d, [&](const std::string& e) { events.push_back(e); });
        return true;
    });
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(events, (std::vector<std::string>{"0", "1", "2", "[DONE]"}));

    int seen = 0;
    ts.client().request("GET", "/long", "", {}, [&](std::string_view) { return ++seen < 3; });  // hang up early
    for (int i = 0; i < 200 && !saw_gone; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(saw_gone.load());
    EXPECT_LT(written.load(), 1000);
}

TEST(ServerHttp, UrlsAndSse) {
    auto u = http::parse_url("http://example.com:8081/base/");
    EXPECT_EQ(u.host, "example.com");
    EXPECT_EQ(u.port, 8081);
    EXPECT_EQ(u.path, "/base");
    EXPECT_THROW(http::parse_url("https://x"), yiti::Error);
    http::SseParser p;
    std::vector<std::string> ev;
    auto add = [&](const std::string& e) { ev.push_back(e); };
    p.feed("data: a\r\n\r\n: comment\n\ndata: b", add);
    p.feed("\ndata: c\n\n", add);
    EXPECT_EQ(ev, (std::vector<std::string>{"a", "b\nc"}));
}

TEST(ServerHttp, LoopbackNames) {
    for (const char* h : {"localhost", "app.localhost", "127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1"})
        EXPECT_TRUE(yiti::server::is_loopback_name(h)) << h;
    for (const char* h : {"", "localhostx", "evil.com", "127.0.0.1.nip.io", "0.0.0.0", "10.0.0.1", "::", "::ffff:10.0.0.1",
                          "128.0.0.1", "localhost.evil.com"})
        EXPECT_FALSE(yiti::server::is_loopback_name(h)) << h;
}

namespace {

// A plain client socket for bytes no well-behaved client sends.
struct RawConn {
    int fd = -1;
    explicit RawConn(int port) {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        timeval tv{10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        EXPECT_EQ(::connect(fd, (sockaddr*)&a, sizeof a), 0);
    }
    ~RawConn() { ::close(fd); }
    void send(const std::string& d) { EXPECT_EQ(::send(fd, d.data(), d.size(), MSG_NOSIGNAL), (ssize_t)d.size()); }
    // Until the server closes (or 10 s pass).
    std::string receive_all() {
        std::string out;
        char b[4096];
        for (ssize_t n; (n = ::recv(fd, b, sizeof b, 0)) > 0;) out.append(b, (size_t)n);
        return out;
    }
    std::string receive_until(const std::string& needle) {
        std::string out;
        char b[4096];
        for (ssize_t n; out.find(needle) == std::string::npos && (n = ::recv(fd, b, sizeof b, 0)) > 0;) out.append(b, (size_t)n);
        return out;
    }
};

}  // namespace

TEST(ServerHttp, DeadlinesBudgetAndLineEndings) {
    http::ServerOptions o;
    o.header_timeout_seconds = 1;
    o.body_timeout_seconds = 1;
    o.max_body_bytes = 1000;
    o.max_buffered_body_bytes = 1500;
    TestServer ts([](const http::Request& rq, http::Response& rs) { rs.body = "ok " + rq.path + " " + std::to_string(rq.body.size()); }, o);
    auto raw = [&](const std::string& data, bool /*unused*/) {
        RawConn c(ts.srv.port());
        c.send(data);
        return c.receive_all();
    };
    // Bare LF line endings are HTTP too.
    EXPECT_EQ(raw("GET /lf HTTP/1.1\nConnection: close\n\n", false).substr(0, 12), "HTTP/1.1 200");
    // Not HTTP: answered at once.
    EXPECT_EQ(raw(std::string("\x16\x03\x01\x00\x10", 5), false).substr(0, 12), "HTTP/1.1 400");
    // A head that never ends, a body that stops: 408 after the deadline.
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(raw("GET /slow HTTP/1.1\r\nX-A: b", false).substr(0, 12), "HTTP/1.1 408");
    EXPECT_EQ(raw("POST /slow HTTP/1.1\r\nContent-Length: 10\r\n\r\n12", false).substr(0, 12), "HTTP/1.1 408");
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1800));
    // Two 800-byte bodies do not fit the 1500-byte budget at once: the second waits for nothing
    // and gets 503 with Retry-After while the first is still arriving.
    RawConn first(ts.srv.port());
    first.send("POST /a HTTP/1.1\r\nContent-Length: 800\r\n\r\nxx");
    for (int i = 0; i < 500 && ts.srv.buffered_body_bytes() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::string second = raw("POST /b HTTP/1.1\r\nContent-Length: 800\r\n\r\n" + std::string(800, 'y'), false);
    EXPECT_EQ(second.substr(0, 12), "HTTP/1.1 503");
    EXPECT_NE(second.find("Retry-After:"), std::string::npos);
    EXPECT_EQ(ts.srv.buffered_body_bytes(), 800u);
    first.send(std::string(798, 'x'));
    std::string a = first.receive_until("ok /a");
    EXPECT_EQ(a.substr(0, 12), "HTTP/1.1 200");
    EXPECT_NE(a.find("ok /a 800"), std::string::npos);
    // Given back once answered: the same body now fits.
    EXPECT_EQ(raw("POST /c HTTP/1.1\r\nConnection: close\r\nContent-Length: 800\r\n\r\n" + std::string(800, 'z'), false).substr(0, 12),
              "HTTP/1.1 200");
    for (int i = 0; i < 200 && ts.srv.buffered_body_bytes() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(ts.srv.buffered_body_bytes(), 0u);
}
