#include "server/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/error.h"

namespace yiti::server::http {

namespace {

using clock_type = std::chrono::steady_clock;

std::string lower(std::string_view s) {
    std::string r(s);
    for (char& c : r) c = (char)std::tolower((unsigned char)c);
    return r;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

bool has_token(std::string_view list, std::string_view token) {
    // Comma-separated, case-insensitive.
    std::string l = lower(list);
    size_t pos = 0;
    while (pos <= l.size()) {
        size_t end = l.find(',', pos);
        if (end == std::string::npos) end = l.size();
        if (trim(std::string_view(l).substr(pos, end - pos)) == token) return true;
        pos = end + 1;
    }
    return false;
}

std::string default_error_body(int status, const std::string& message) {
    std::string esc;
    for (char c : message) {
        if (c == '"' || c == '\\') {
            esc += '\\';
            esc += c;
        } else if ((unsigned char)c < 0x20) {
            esc += ' ';
        } else {
            esc += c;
        }
    }
    const char* type = status >= 500 ? "server_error" : "invalid_request_error";
    return std::string("{\"error\":{\"message\":\"") + esc + "\",\"type\":\"" + type + "\",\"param\":null,\"code\":null}}";
}

}  // namespace

std::string Request::header(std::string_view name) const {
    for (auto& [k, v] : headers)
        if (k == name) return v;
    return "";
}

bool Request::has_header(std::string_view name) const {
    for (auto& [k, v] : headers)
        if (k == name) return true;
    return false;
}

void Response::set_header(const std::string& name, const std::string& value) {
    const std::string ln = lower(name);
    for (auto& [k, v] : headers)
        if (lower(k) == ln) {
            v = value;
            return;
        }
    headers.emplace_back(name, value);
}

const char* status_text(int s) {
    switch (s) {
        case 100: return "Continue";
        case 200: return "OK";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 411: return "Length Required";
        case 413: return "Payload Too Large";
        case 415: return "Unsupported Media Type";
        case 422: return "Unprocessable Entity";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 499: return "Client Closed Request";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return "Unknown";
    }
}

// One client connection: the socket, bytes read but not yet used, and its state for stop().
struct Server::Conn {
    int fd = -1;
    std::string remote;
    std::string buf;                 // received, not yet consumed
    std::atomic<bool> busy{false};   // answering a request (stop() lets it finish)
    std::atomic<bool> done{false};   // the thread has finished
    bool broken = false;             // a read or write failed
    int io_timeout_ms = 60000;
    std::thread thread;

    ~Conn() {
        if (fd >= 0) ::close(fd);
    }

    // Waits for the socket; false on timeout or error.
    bool wait(short events, int timeout_ms) {
        pollfd p{fd, events, 0};
        for (;;) {
            int r = ::poll(&p, 1, timeout_ms);
            if (r < 0 && errno == EINTR) continue;
            return r > 0;
        }
    }

    // Reads more bytes into buf; false at EOF, error or timeout.
    bool fill(int timeout_ms) {
        if (broken) return false;
        if (!wait(POLLIN, timeout_ms)) return false;
        char tmp[16384];
        for (;;) {
            ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                broken = true;
                return false;
            }
            buf.append(tmp, (size_t)n);
            return true;
        }
    }

    bool send_all(std::string_view data) {
        if (broken) return false;
        size_t off = 0;
        while (off < data.size()) {
            ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    if (!wait(POLLOUT, io_timeout_ms)) {
                        broken = true;
                        return false;
                    }
                    continue;
                }
                broken = true;
                return false;
            }
            off += (size_t)n;
        }
        return true;
    }

    // After an error answered before the body was read: stop writing and swallow what the client
    // still sends for a moment, so that it reads the answer instead of a connection reset.
    void linger_close() {
        ::shutdown(fd, SHUT_WR);
        const auto end = clock_type::now() + std::chrono::seconds(2);
        char tmp[16384];
        while (clock_type::now() < end && wait(POLLIN, 200)) {
            ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
            if (n == 0 || (n < 0 && errno != EINTR)) break;
        }
        broken = true;
    }

    bool peer_closed() {
        if (broken) return true;
        pollfd p{fd, (short)(POLLIN | POLLRDHUP), 0};
        int r = ::poll(&p, 1, 0);
        if (r <= 0) return false;
        if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) return true;
        if (p.revents & POLLIN) {
            char c;
            ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n == 0) return true;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
        }
        return false;
    }
};

namespace {

class ChunkedStream : public Stream {
public:
    ChunkedStream(std::function<bool(std::string_view)> send, std::function<bool()> gone, bool chunked)
        : send_(std::move(send)), gone_(std::move(gone)), chunked_(chunked) {}
    bool write(std::string_view data) override {
        if (failed_) return false;
        if (data.empty()) return true;
        std::string out;
        if (chunked_) {
            char head[32];
            snprintf(head, sizeof head, "%zx\r\n", data.size());
            out.reserve(data.size() + 16);
            out += head;
            out += data;
            out += "\r\n";
        } else {
            out = std::string(data);
        }
        bytes_ += data.size();
        if (!send_(out)) failed_ = true;
        return !failed_;
    }
    bool client_gone() override {
        if (failed_) return true;
        if (gone_()) failed_ = true;
        return failed_;
    }
    bool finish() {
        if (failed_ || !chunked_) return !failed_;
        if (!send_("0\r\n\r\n")) failed_ = true;
        return !failed_;
    }
    size_t bytes() const { return bytes_; }

private:
    std::function<bool(std::string_view)> send_;
    std::function<bool()> gone_;
    bool chunked_;
    bool failed_ = false;
    size_t bytes_ = 0;
};

}  // namespace

Server::Server(Handler handler, ServerOptions opt) : handler_(std::move(handler)), opt_(std::move(opt)) {
    if (!opt_.error_body) opt_.error_body = default_error_body;
    if (::pipe(wake_pipe_) != 0) throw Error(strprintf("pipe: %s", strerror(errno)));
    fcntl(wake_pipe_[0], F_SETFL, O_NONBLOCK);
    fcntl(wake_pipe_[1], F_SETFL, O_NONBLOCK);
}

Server::~Server() {
    stop(0);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    ::close(wake_pipe_[0]);
    ::close(wake_pipe_[1]);
}

void Server::bind(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string ps = std::to_string(port);
    int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), ps.c_str(), &hints, &res);
    if (rc != 0) throw Error(strprintf("cannot resolve host '%s': %s", host.c_str(), gai_strerror(rc)));
    std::string last_err = "no address";
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_err = strerror(errno);
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
            last_err = strerror(errno);
            ::close(fd);
            continue;
        }
        sockaddr_storage ss{};
        socklen_t sl = sizeof ss;
        getsockname(fd, (sockaddr*)&ss, &sl);
        port_ = ss.ss_family == AF_INET6 ? ntohs(((sockaddr_in6*)&ss)->sin6_port) : ntohs(((sockaddr_in*)&ss)->sin_port);
        listen_fd_ = fd;
        break;
    }
    freeaddrinfo(res);
    if (listen_fd_ < 0) throw Error(strprintf("cannot listen on %s:%d: %s", host.c_str(), port, last_err.c_str()));
}

int Server::open_connections() const {
    std::lock_guard<std::mutex> lk(mu_);
    return (int)conns_.size();
}

void Server::run() {
    if (listen_fd_ < 0) throw Error("http server: run() before bind()");
    while (!stopping_) {
        pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
        int r = ::poll(p, 2, 1000);
        // Reap finished connection threads.
        {
            std::vector<std::shared_ptr<Conn>> finished;
            std::lock_guard<std::mutex> lk(mu_);
            for (auto it = conns_.begin(); it != conns_.end();) {
                if ((*it)->done) {
                    finished.push_back(*it);
                    it = conns_.erase(it);
                } else {
                    ++it;
                }
            }
            for (auto& c : finished)
                if (c->thread.joinable()) c->thread.join();
        }
        if (stopping_) break;
        if (r <= 0 || !(p[0].revents & POLLIN)) continue;
        sockaddr_storage ss{};
        socklen_t sl = sizeof ss;
        int fd = ::accept4(listen_fd_, (sockaddr*)&ss, &sl, SOCK_CLOEXEC);
        if (fd < 0) {
            // Out of descriptors or memory: wait a little instead of spinning.
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char addr[INET6_ADDRSTRLEN] = "?";
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((sockaddr_in*)&ss)->sin_addr, addr, sizeof addr);
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((sockaddr_in6*)&ss)->sin6_addr, addr, sizeof addr);
        auto c = std::make_shared<Conn>();
        c->fd = fd;
        c->remote = addr;
        c->io_timeout_ms = opt_.io_timeout_seconds * 1000;
        std::lock_guard<std::mutex> lk(mu_);
        if ((int)conns_.size() >= opt_.max_connections) {
            std::string body = opt_.error_body(503, "too many connections");
            std::string resp = strprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                                         body.size()) +
                               body;
            c->send_all(resp);
            continue;  // ~Conn closes it
        }
        conns_.insert(c);
        c->thread = std::thread([this, c] { serve_conn(c); });
    }
}

void Server::interrupt() {
    stopping_ = true;
    char b = 1;
    (void)!::write(wake_pipe_[1], &b, 1);
}

void Server::stop(int grace_ms) {
    stopping_ = true;
    char b = 1;
    (void)!::write(wake_pipe_[1], &b, 1);
    // Idle connections go now; busy ones may finish their response.
    {
        std::lock_guard<std::mutex> lk(mu_);
        for (auto& c : conns_)
            if (!c->busy) ::shutdown(c->fd, SHUT_RDWR);
    }
    const auto deadline = clock_type::now() + std::chrono::milliseconds(grace_ms);
    for (;;) {
        bool all_done = true;
        {
            std::lock_guard<std::mutex> lk(mu_);
            for (auto& c : conns_) {
                if (!c->done) all_done = false;
                if (!c->busy && !c->done) ::shutdown(c->fd, SHUT_RDWR);
            }
        }
        if (all_done || clock_type::now() >= deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::unordered_set<std::shared_ptr<Conn>> rest;
    {
        std::lock_guard<std::mutex> lk(mu_);
        for (auto& c : conns_)
            if (!c->done) ::shutdown(c->fd, SHUT_RDWR);
        rest.swap(conns_);
    }
    for (auto& c : rest)
        if (c->thread.joinable()) {
            if (c->thread.get_id() == std::this_thread::get_id())
                c->thread.detach();
            else
                c->thread.join();
        }
}

void Server::serve_conn(std::shared_ptr<Conn> c) {
    bool keep_alive = true;
    while (keep_alive && !stopping_) {
        if (!handle_one(*c, &keep_alive)) break;
    }
    ::shutdown(c->fd, SHUT_RDWR);
    c->done = true;
}

void Server::log_line(const Request& req, int status, size_t bytes, double ms, const std::string& note) {
    if (!opt_.log_requests) return;
    char ts[32];
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    std::strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    std::string path = req.path.empty() ? std::string("-") : req.path;
    if (path.size() > 200) path = path.substr(0, 200) + "...";
    for (char& ch : path)
        if ((unsigned char)ch < 0x20 || ch == 0x7f) ch = '?';
    fprintf(stderr, "%s %s %s %s %d %zu %.1fms%s%s\n", ts, req.remote.c_str(), req.method.empty() ? "-" : req.method.c_str(),
            path.c_str(), status, bytes, ms, note.empty() ? "" : " ", note.c_str());
    fflush(stderr);
}

// Reads and answers one request. Returns false when the connection should be closed without
// another response (EOF, broken socket); *keep_alive says whether to wait for another request.
bool Server::handle_one(Conn& c, bool* keep_alive) {
    Request req;
    req.remote = c.remote;
    // 1. The request head.
    size_t head_end;
    const auto t_wait = clock_type::now();
    for (;;) {
        head_end = c.buf.find("\r\n\r\n");
        if (head_end != std::string::npos) break;
        if (c.buf.size() > opt_.max_header_bytes) break;
        const int timeout = c.buf.empty() ? opt_.keep_alive_seconds * 1000 : opt_.io_timeout_seconds * 1000;
        if (!c.fill(timeout)) return false;
        if (stopping_ && c.buf.empty()) return false;
    }
    (void)t_wait;
    const auto t0 = clock_type::now();
    c.busy = true;
    struct BusyGuard {
        Conn& c;
        ~BusyGuard() { c.busy = false; }
    } busy_guard{c};

    auto ms_since = [&] { return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count(); };
    auto send_error = [&](int status, const std::string& msg) {
        std::string body = opt_.error_body(status, msg);
        std::string head = strprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                                     "Connection: close\r\n\r\n",
                                     status, status_text(status), body.size());
        c.send_all(head + body);
        c.linger_close();
        log_line(req, status, body.size(), ms_since(), "");
        *keep_alive = false;
        return false;
    };
    if (head_end == std::string::npos || head_end > opt_.max_header_bytes)
        return send_error(431, "the request line and headers are too large");

    std::string_view head(c.buf.data(), head_end);
    // Request line.
    size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    {
        size_t s1 = line.find(' ');
        size_t s2 = s1 == std::string_view::npos ? s1 : line.find(' ', s1 + 1);
        if (s1 == std::string_view::npos || s2 == std::string_view::npos) return send_error(400, "malformed request line");
        req.method = std::string(line.substr(0, s1));
        req.target = std::string(line.substr(s1 + 1, s2 - s1 - 1));
        std::string_view ver = line.substr(s2 + 1);
        if (req.method.empty() || req.target.empty()) return send_error(400, "malformed request line");
        for (char ch : req.method)
            if (!std::isupper((unsigned char)ch)) return send_error(400, "malformed request method");
        if (ver == "HTTP/1.1")
            req.version_minor = 1;
        else if (ver == "HTTP/1.0")
            req.version_minor = 0;
        else if (ver.substr(0, 5) == "HTTP/")
            return send_error(505, "only HTTP/1.0 and HTTP/1.1 are supported");
        else
            return send_error(400, "malformed request line");
        size_t q = req.target.find('?');
        req.path = req.target.substr(0, q);
        if (q != std::string::npos) req.query = req.target.substr(q + 1);
        // Absolute-form targets (proxies) carry the scheme and host.
        if (req.path.rfind("http://", 0) == 0 || req.path.rfind("https://", 0) == 0) {
            size_t p = req.path.find('/', req.path.find("//") + 2);
            req.path = p == std::string::npos ? "/" : req.path.substr(p);
        }
    }
    // Headers.
    size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
    while (pos < head.size()) {
        size_t e = head.find("\r\n", pos);
        if (e == std::string_view::npos) e = head.size();
        std::string_view h = head.substr(pos, e - pos);
        pos = e + 2;
        if (h.empty()) continue;
        if (h.front() == ' ' || h.front() == '\t') return send_error(400, "folded header lines are not supported");
        size_t colon = h.find(':');
        if (colon == std::string_view::npos || colon == 0) return send_error(400, "malformed header line");
        std::string name = lower(h.substr(0, colon));
        for (char ch : name)
            if (ch <= 0x20 || ch >= 0x7f) return send_error(400, "malformed header name");
        req.headers.emplace_back(std::move(name), std::string(trim(h.substr(colon + 1))));
        if (req.headers.size() > 200) return send_error(431, "too many headers");
    }
    c.buf.erase(0, head_end + 4);

    // Connection persistence.
    const std::string conn_hdr = req.header("connection");
    bool ka = req.version_minor == 1 ? !has_token(conn_hdr, "close") : has_token(conn_hdr, "keep-alive");

    // 2. The body.
    const std::string te = req.header("transfer-encoding");
    const bool chunked_body = !te.empty();
    int64_t content_length = -1;
    for (auto& [k, v] : req.headers) {
        if (k != "content-length") continue;
        if (v.empty() || v.size() > 18) return send_error(400, "invalid Content-Length");
        int64_t n = 0;
        for (char ch : v) {
            if (!std::isdigit((unsigned char)ch)) return send_error(400, "invalid Content-Length");
            n = n * 10 + (ch - '0');
        }
        if (content_length >= 0 && n != content_length) return send_error(400, "conflicting Content-Length headers");
        content_length = n;
    }
    if (chunked_body) {
        if (lower(trim(te)) != "chunked") return send_error(501, "unsupported Transfer-Encoding '" + te + "'");
        if (content_length >= 0) return send_error(400, "both Content-Length and Transfer-Encoding given");
    }
    if (content_length > (int64_t)opt_.max_body_bytes)
        return send_error(413, strprintf("the request body is too large (%lld bytes; the limit is %zu)",
                                         (long long)content_length, opt_.max_body_bytes));
    if (has_token(req.header("expect"), "100-continue") && req.version_minor == 1 && (content_length > 0 || chunked_body))
        c.send_all("HTTP/1.1 100 Continue\r\n\r\n");
    const int io_ms = opt_.io_timeout_seconds * 1000;
    if (content_length > 0) {
        while ((int64_t)c.buf.size() < content_length)
            if (!c.fill(io_ms)) return send_error(400, "the request body ended early");
        req.body = c.buf.substr(0, (size_t)content_length);
        c.buf.erase(0, (size_t)content_length);
    } else if (chunked_body) {
        for (;;) {
            size_t le;
            while ((le = c.buf.find("\r\n")) == std::string::npos) {
                if (c.buf.size() > 1024) return send_error(400, "malformed chunk size line");
                if (!c.fill(io_ms)) return send_error(400, "the request body ended early");
            }
            std::string size_line = c.buf.substr(0, le);
            size_t semi = size_line.find(';');
            if (semi != std::string::npos) size_line.resize(semi);
            std::string_view sz = trim(size_line);
            if (sz.empty() || sz.size() > 15) return send_error(400, "malformed chunk size");
            uint64_t n = 0;
            for (char ch : sz) {
                if (!std::isxdigit((unsigned char)ch)) return send_error(400, "malformed chunk size");
                n = n * 16 + (uint64_t)(std::isdigit((unsigned char)ch) ? ch - '0' : (std::tolower(ch) - 'a' + 10));
            }
            c.buf.erase(0, le + 2);
            if (n == 0) {
                // Trailers, up to an empty line.
                for (;;) {
                    while ((le = c.buf.find("\r\n")) == std::string::npos) {
                        if (c.buf.size() > opt_.max_header_bytes) return send_error(431, "trailers too large");
                        if (!c.fill(io_ms)) return send_error(400, "the request body ended early");
                    }
                    c.buf.erase(0, le + 2);
                    if (le == 0) break;
                }
                break;
            }
            if (req.body.size() + n > opt_.max_body_bytes)
                return send_error(413, strprintf("the request body is too large (the limit is %zu bytes)", opt_.max_body_bytes));
            while (c.buf.size() < n + 2)
                if (!c.fill(io_ms)) return send_error(400, "the request body ended early");
            if (c.buf.compare(n, 2, "\r\n") != 0) return send_error(400, "malformed chunk");
            req.body.append(c.buf, 0, n);
            c.buf.erase(0, n + 2);
        }
    }

    // 3. The answer.
    req.client_gone = [&c] { return c.peer_closed(); };
    Response res;
    try {
        handler_(req, res);
    } catch (const std::exception& e) {
        res = Response();
        res.status = 500;
        res.body = opt_.error_body(500, std::string("internal error: ") + e.what());
        res.set_header("Content-Type", "application/json");
    }
    if (stopping_) ka = false;
    const bool head_only = req.method == "HEAD";
    std::string out = strprintf("HTTP/1.%d %d %s\r\n", req.version_minor, res.status, status_text(res.status));
    for (auto& [k, v] : res.headers) {
        std::string lk = lower(k);
        if (lk == "content-length" || lk == "transfer-encoding" || lk == "connection") continue;
        out += k + ": " + v + "\r\n";
    }
    size_t bytes = 0;
    if (res.stream && !head_only) {
        const bool chunked = req.version_minor == 1;
        if (!chunked) ka = false;
        if (chunked) out += "Transfer-Encoding: chunked\r\n";
        out += ka ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
        bool ok = c.send_all(out);
        ChunkedStream st([&c](std::string_view d) { return c.send_all(d); }, [&c] { return c.peer_closed(); }, chunked);
        if (!ok) st.client_gone();
        try {
            res.stream(st);
        } catch (const std::exception& e) {
            fprintf(stderr, "yiti serve: error while streaming %s: %s\n", req.path.c_str(), e.what());
            ka = false;
        }
        if (!st.finish()) ka = false;
        bytes = st.bytes();
    } else {
        out += strprintf("Content-Length: %zu\r\n", res.body.size());
        out += ka ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
        if (!head_only) out += res.body;
        bytes = res.body.size();
        if (!c.send_all(out)) ka = false;
    }
    log_line(req, res.status, bytes, ms_since(), res.log_note);
    *keep_alive = ka && !c.broken;
    return !c.broken;
}

}  // namespace yiti::server::http
