// A small HTTP/1.1 server on POSIX sockets: one thread per connection, keep-alive, request bodies
// by Content-Length or chunked transfer coding (with a size limit answered by 413 before the body
// is read), "Expect: 100-continue", and streamed responses (chunked) whose writer can tell when the
// client has gone away. It knows nothing about the API it serves: a single handler gets every
// request.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
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

struct ServerOptions {
    size_t max_body_bytes = 8u << 20;      // larger bodies get 413
    size_t max_header_bytes = 64u << 10;   // request line and headers; larger get 431
    int max_connections = 512;             // more get 503 and are closed
    int keep_alive_seconds = 30;           // idle time before a kept-alive connection is closed
    int io_timeout_seconds = 60;           // longest stall while reading a request or writing
    bool log_requests = true;              // one line per request on stderr
    // The body of the errors the HTTP layer answers itself (400, 413, 431, 503), as JSON.
    // Default: {"error": {"message": ..., "type": ..., "param": null, "code": null}}.
    std::function<std::string(int status, const std::string& message)> error_body;
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
    // Accepts connections until stop(); call after bind(). Blocks.
    void run();
    // Stops accepting, closes idle connections and waits (up to `grace_ms`) for the ones still
    // answering a request to finish. Safe to call from another thread (not from a signal handler).
    void stop(int grace_ms = 10000);
    // Makes run() return soon; async-signal-safe. Call stop() afterwards.
    void interrupt();
    bool stopping() const { return stopping_.load(); }
    int open_connections() const;

private:
    struct Conn;
    void serve_conn(std::shared_ptr<Conn> c);
    bool handle_one(Conn& c, bool* keep_alive);
    void log_line(const Request& req, int status, size_t bytes, double ms, const std::string& note);

    Handler handler_;
    ServerOptions opt_;
    int listen_fd_ = -1;
    int wake_pipe_[2] = {-1, -1};
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    mutable std::mutex mu_;
    std::unordered_set<std::shared_ptr<Conn>> conns_;
    std::vector<std::thread> threads_;  // joined in stop(); finished ones are reaped in run()
    std::atomic<int> active_handlers_{0};
};

// Status line text ("Not Found" for 404).
const char* status_text(int status);

}  // namespace yiti::server::http
