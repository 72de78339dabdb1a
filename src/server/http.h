// A small HTTP/1.1 server on POSIX sockets, built so that no client can exhaust it:
//
// - One I/O thread (epoll) owns every connection while it is idle or sending a request: idle,
//   slow and half-sent connections cost a file descriptor and their buffered bytes, never a
//   thread. A request's headers must arrive within a deadline from its first byte, its body
//   within another (408 and a close otherwise), so a client dripping a byte a second is gone
//   after seconds, whatever its per-read pace.
// - Request bodies are counted against one budget across all connections (declared sizes, before
//   the body is read); beyond it, 503 with Retry-After. Their memory is given back once the
//   request is answered.
// - Complete requests go to a bounded pool of worker threads started up front (no thread is
//   created per connection, so running out of threads cannot stop the server); a few workers
//   serve only GET/HEAD/OPTIONS, so /health and /metrics answer while every other worker holds a
//   long stream. The worker runs the handler and writes the answer, streamed (chunked) or not,
//   then hands a kept-alive connection back to the I/O thread.
// - Out of memory while reading or answering a request: 503 and a close, never an exit. Out of
//   file descriptors: a spare descriptor is given up to answer the new connection with 503.
// - Non-HTTP bytes (a TLS ClientHello, a line that is no request line) are answered with 400 and
//   a close as soon as the first line shows it. Lines may end in CRLF or a bare LF (RFC 9112 2.2).
//
// Keep-alive, request bodies by Content-Length or chunked transfer coding (with a size limit
// answered by 413 before the body is read), "Expect: 100-continue", and streamed responses whose
// writer can tell when the client has gone away. It knows nothing about the API it serves: a
// single handler gets every request, and an optional admission check sees each request's head.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace yiti::server::http {

struct Request {
    std::string method;   // "GET", "POST", ...
    std::string target;   // as sent: path and query
    std::string path;     // target without the query, percent-decoding not applied
    std::string query;    // after '?', or ""
    int version_minor = 1;  // HTTP/1.x
    std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
    std::string body;
    std::string remote;   // peer address
    // True once the client has closed the connection (a handler that takes long can give up).
    std::function<bool()> client_gone;
    // The first header of that name (lower case), or "".
    std::string header(std::string_view name) const;
    bool has_header(std::string_view name) const;
};

// A response being streamed. write() returns false once the client is gone (the connection broke
// or the peer closed it); client_gone() checks that without writing.
class Stream {
public:
    virtual ~Stream() = default;
    virtual bool write(std::string_view data) = 0;
    virtual bool client_gone() = 0;
};

struct Response {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;  // Content-Length is added by the server
    std::string body;
    // When set, the headers go out with chunked transfer coding and this writes the body.
    std::function<void(Stream&)> stream;
    std::string log_note;  // appended to the request's log line
    void set_header(const std::string& name, const std::string& value);
};

using Handler = std::function<void(const Request&, Response&)>;

// What the admission check answers for a request it refuses before its body is read.
struct Refusal {
    int status = 0;  // 0: admitted
    std::string message;
    std::vector<std::pair<std::string, std::string>> headers;
};

struct ServerOptions {
    size_t max_body_bytes = 8u << 20;             // larger bodies get 413
    size_t max_header_bytes = 64u << 10;          // request line and headers; larger get 431
    size_t max_buffered_body_bytes = 128u << 20;  // bodies being received, all connections together; beyond: 503
    int max_connections = 512;                    // more get 503 (after closing an idle kept-alive one, if any)
    int keep_alive_seconds = 30;                  // idle time before a kept-alive connection is closed
    int header_timeout_seconds = 10;              // from a request's first byte to the end of its headers; then 408
    int body_timeout_seconds = 30;                // for a body, plus one second per body_min_rate bytes; then 408
    size_t body_min_rate = 64u << 10;
    int io_timeout_seconds = 60;                  // longest stall while writing an answer
    int worker_threads = 32;                      // handlers running at once (a streamed answer holds one)
    int light_worker_threads = 2;                 // more, only for GET / HEAD / OPTIONS requests
    int retry_after_seconds = 2;                  // in 503 answers the server gives itself
    bool log_requests = true;                     // one line per request on stderr
    // The body of the errors the HTTP layer answers itself (400, 408, 413, 431, 503), as JSON.
    // Default: {"error": {"message": ..., "type": ..., "param": null, "code": null}}.
    std::function<std::string(int status, const std::string& message)> error_body;
    // Runs on the I/O thread once a request's head is parsed, before its body is read; a refusal
    // (status != 0) is answered at once and the connection closed. Must be quick and thread-safe.
    std::function<Refusal(const Request&)> admit;
};

// Counters of what the HTTP layer refused or ended on its own (for metrics).
struct ServerCounters {
    uint64_t timeouts = 0;           // 408: headers or body too slow
    uint64_t over_capacity = 0;      // 503: too many connections, bodies or no memory / descriptors
    uint64_t malformed = 0;          // 4xx/5xx for requests that were not valid HTTP
    uint64_t refused = 0;            // refused by the admission check
    uint64_t idle_evicted = 0;       // kept-alive idle connections closed to make room
};

class Server {
public:
    Server(Handler handler, ServerOptions opt = {});
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds and listens; port 0 picks a free one. Throws yiti::Error when that fails.
    void bind(const std::string& host, int port);
    int port() const { return port_; }
    // Starts the workers and serves connections until interrupt() or stop(); call after bind().
    // Blocks. Throws yiti::Error when not a single worker thread can be started.
    void run();
    // Stops accepting, closes idle connections and waits (up to `grace_ms`) for the ones still
    // answering a request to finish. Call after run() has returned (or without run()).
    void stop(int grace_ms = 10000);
    // Makes run() return soon; async-signal-safe. Call stop() afterwards.
    void interrupt();
    bool stopping() const { return stopping_.load(); }
    int open_connections() const { return n_conns_.load(); }
    size_t buffered_body_bytes() const { return buffered_.load(); }
    ServerCounters counters() const;

private:
    struct Conn;
    using ConnPtr = std::shared_ptr<Conn>;

    // I/O thread.
    void accept_all();
    void on_event(const ConnPtr& c, uint32_t events);
    void advance(const ConnPtr& c);
    bool parse_head(Conn& c, size_t head_len, size_t consumed);
    bool read_body(Conn& c);
    void answer_and_close(Conn& c, int status, const std::string& message,
                          const std::vector<std::pair<std::string, std::string>>& extra = {});
    void flush_out(Conn& c);
    void dispatch(const ConnPtr& c);
    void close_conn(const ConnPtr& c);
    void sweep();
    void take_back_returned();
    bool watch(Conn& c, uint32_t events);
    // Counts n body bytes against the budget; when they do not fit, answers 503 and returns false.
    bool charge(Conn& c, size_t n);
    std::string error_answer(int status, const std::string& message,
                             const std::vector<std::pair<std::string, std::string>>& extra = {},
                             size_t* body_bytes = nullptr) const;
    void count(uint64_t ServerCounters::*field);
    void release(Conn& c);
    void overloaded(int fd, const char* why);

    // Workers.
    void worker_main(bool light_only);
    bool respond(Conn& c);
    void hand_back(const ConnPtr& c, bool keep);
    void log_line(const Request& req, int status, size_t bytes, double ms, const std::string& note);

    Handler handler_;
    ServerOptions opt_;
    int listen_fd_ = -1;
    int epoll_fd_ = -1;
    int wake_fd_ = -1;   // eventfd: interrupt() and workers handing connections back
    int spare_fd_ = -1;  // given up to answer a connection when descriptors run out
    int port_ = 0;
    std::string oom_answer_;  // prepared up front: sent when memory runs out
    std::atomic<bool> stopping_{false};
    std::atomic<int> n_conns_{0};
    std::atomic<size_t> buffered_{0};
    std::unordered_map<int, ConnPtr> conns_;  // by descriptor; the I/O thread's (stop()'s after run())

    std::mutex q_mu_;
    std::condition_variable q_cv_;
    std::deque<ConnPtr> light_q_, heavy_q_;
    bool quit_ = false;
    int working_ = 0;                              // connections a worker holds
    std::vector<std::pair<ConnPtr, bool>> returned_;  // from workers: (connection, keep alive)
    std::vector<std::pair<ConnPtr, bool>> taken_;     // the I/O thread's side of returned_
    std::vector<std::thread> workers_;

    mutable std::mutex count_mu_;
    ServerCounters counters_;
};

// Status line text ("Not Found" for 404).
const char* status_text(int status);

}  // namespace yiti::server::http
