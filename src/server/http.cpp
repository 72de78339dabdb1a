#include "core/text.h"
#include "server/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <malloc.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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

std::string lower(std::string_view s) { return ascii_lower(s); }

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

// One client connection. The I/O thread owns it while it is idle, receiving a request or closing;
// a worker owns it from dispatch until it hands it back (the descriptor is then out of epoll).
struct Server::Conn {
    enum class St { Idle, Head, Body, Queued, Working, Closing };
    int fd = -1;
    std::string remote;
    std::string buf;       // received, not yet consumed
    std::atomic<St> st{St::Idle};  // (read by the I/O thread while a worker sets it)
    clock_type::time_point deadline{};  // of the current state (keep-alive, headers, body, linger)
    clock_type::time_point t0{};        // the request's first byte
    size_t scan = 0;       // where the search for the end of the head resumes
    bool line_checked = false;
    Request req;
    bool keep_alive = true;
    // The body being received.
    bool chunked = false;
    int64_t body_left = 0;   // Content-Length bytes still to come
    int chunk_phase = 0;     // 0 size line, 1 data, 2 CRLF after data, 3 trailers
    uint64_t chunk_left = 0;
    size_t trailer_bytes = 0;
    clock_type::time_point body_start{};
    size_t charged = 0;      // counted against the servers' body budget
    // Answers the I/O thread writes itself (errors), then lingers until the peer closes.
    std::string out;
    size_t out_off = 0;
    bool wr_shut = false;
    bool in_epoll = false;
    uint32_t events = 0;
    // Worker side.
    bool broken = false;
    int io_timeout_ms = 60000;

    ~Conn() {
        if (fd >= 0) ::close(fd);
    }

    // Waits for the socket; false on timeout or error.
    bool wait(short ev, int timeout_ms) {
        pollfd p{fd, ev, 0};
        for (;;) {
            int r = ::poll(&p, 1, timeout_ms);
            if (r < 0 && errno == EINTR) continue;
            return r > 0;
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

    bool peer_closed() {
        if (broken) return true;
        pollfd p{fd, (short)(POLLIN | POLLRDHUP), 0};
        int r = ::poll(&p, 1, 0);
        if (r <= 0) return false;
        if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) return true;
        if (p.revents & POLLIN) {
            char ch;
            ssize_t n = ::recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n == 0) return true;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
        }
        return false;
    }

    // Back to waiting for a request on a kept-alive connection.
    void reset_for_next(const ServerOptions& opt) {
        req = Request();
        st = St::Idle;
        scan = 0;
        line_checked = false;
        chunked = false;
        body_left = 0;
        chunk_phase = 0;
        chunk_left = 0;
        trailer_bytes = 0;
        broken = false;
        deadline = clock_type::now() + std::chrono::seconds(opt.keep_alive_seconds);
        if (buf.empty() && buf.capacity() > (64u << 10)) std::string().swap(buf);
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

// The end of a request head in b, searching from `from`: the offset just past the blank line
// (CRLF or LF line endings), with *head_len the head's length without its final line break.
size_t find_head_end(const std::string& b, size_t from, size_t* head_len) {
    for (size_t i = b.find('\n', from); i != std::string::npos; i = b.find('\n', i + 1)) {
        if (i + 1 < b.size() && b[i + 1] == '\n') {
            *head_len = i + 1;
            return i + 2;
        }
        if (i + 2 < b.size() && b[i + 1] == '\r' && b[i + 2] == '\n') {
            *head_len = i + 1;
            return i + 3;
        }
    }
    return std::string::npos;
}

// A request line: METHOD SP target SP HTTP/x.y. Returns 0, or the status to answer.
int check_request_line(std::string_view line, Request* req, std::string* err) {
    size_t s1 = line.find(' ');
    size_t s2 = s1 == std::string_view::npos ? s1 : line.find(' ', s1 + 1);
    if (s1 == std::string_view::npos || s2 == std::string_view::npos || s1 == 0 || s2 == s1 + 1) {
        *err = "malformed request line (this server speaks HTTP/1.1)";
        return 400;
    }
    std::string_view method = line.substr(0, s1), target = line.substr(s1 + 1, s2 - s1 - 1), ver = line.substr(s2 + 1);
    for (char ch : method)
        if (ch < 'A' || ch > 'Z') {
            *err = "malformed request method";
            return 400;
        }
    for (char ch : target)
        if ((unsigned char)ch <= 0x20 || ch == 0x7f) {
            *err = "malformed request target";
            return 400;
        }
    int minor = 1;
    if (ver == "HTTP/1.1") {
        minor = 1;
    } else if (ver == "HTTP/1.0") {
        minor = 0;
    } else if (ver.substr(0, 5) == "HTTP/") {
        *err = "only HTTP/1.0 and HTTP/1.1 are supported";
        return 505;
    } else {
        *err = "malformed request line (this server speaks HTTP/1.1)";
        return 400;
    }
    if (req) {
        req->method = std::string(method);
        req->target = std::string(target);
        req->version_minor = minor;
    }
    return 0;
}

std::string strip_cr(std::string_view l) {
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    return std::string(l);
}

// A body of `bytes` must have arrived by then.
clock_type::time_point body_deadline(clock_type::time_point start, size_t bytes, const ServerOptions& o) {
    const double extra_ms = 1000.0 * (double)bytes / (double)std::max<size_t>(o.body_min_rate, 1);
    return start + std::chrono::seconds(o.body_timeout_seconds) + std::chrono::milliseconds((int64_t)extra_ms);
}

// Frees a request body; a large one's pages go back to the system at once. (glibc serves blocks
// of this size from its heaps once a large block has been freed, and keeps freed heap pages;
// malloc_trim releases every whole free page of every arena.)
void free_body(std::string& body) {
    const size_t cap = body.capacity();
    std::string().swap(body);
    if (cap >= (1u << 20)) malloc_trim(0);
}

double ms_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

Server::Server(Handler handler, ServerOptions opt) : handler_(std::move(handler)), opt_(std::move(opt)) {
    if (!opt_.error_body) opt_.error_body = default_error_body;
    if (opt_.worker_threads < 1) opt_.worker_threads = 1;
    if (opt_.light_worker_threads < 0) opt_.light_worker_threads = 0;
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw Error(strprintf("eventfd: %s", strerror(errno)));
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw Error(strprintf("epoll_create1: %s", strerror(errno)));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_fd_;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    oom_answer_ = error_answer(503, "the server is out of memory for this request; retry later");
}

// An answer the HTTP layer gives itself: an error body, Connection: close, and Retry-After on 503.
std::string Server::error_answer(int status, const std::string& message,
                                 const std::vector<std::pair<std::string, std::string>>& extra, size_t* body_bytes) const {
    const std::string body = opt_.error_body(status, message);
    if (body_bytes) *body_bytes = body.size();
    std::string head = strprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n", status,
                                 status_text(status), body.size());
    if (status == 503) head += strprintf("Retry-After: %d\r\n", opt_.retry_after_seconds);
    for (auto& [k, v] : extra) head += k + ": " + v + "\r\n";
    return head + "Connection: close\r\n\r\n" + body;
}

void Server::count(uint64_t ServerCounters::*field) {
    std::lock_guard<std::mutex> lk(count_mu_);
    ++(counters_.*field);
}

Server::~Server() {
    stop(0);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (spare_fd_ >= 0) ::close(spare_fd_);
}

ServerCounters Server::counters() const {
    std::lock_guard<std::mutex> lk(count_mu_);
    return counters_;
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
        int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            last_err = strerror(errno);
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 512) != 0) {
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

void Server::interrupt() {
    stopping_ = true;
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
}

bool Server::watch(Conn& c, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = c.fd;
    if (c.in_epoll) {
        if (c.events == events) return true;
        if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev) != 0) return false;
    } else {
        if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) return false;
        c.in_epoll = true;
    }
    c.events = events;
    return true;
}

bool Server::charge(Conn& c, size_t n) {
    size_t cur = buffered_.load();
    for (;;) {
        if (cur + n > opt_.max_buffered_body_bytes) {
            answer_and_close(c, 503, "the server is receiving too many request bodies at once; retry later");
            return false;
        }
        if (buffered_.compare_exchange_weak(cur, cur + n)) break;
    }
    c.charged += n;
    return true;
}

void Server::release(Conn& c) {
    if (c.charged) buffered_ -= c.charged;
    c.charged = 0;
}

void Server::run() {
    if (listen_fd_ < 0) throw Error("http server: run() before bind()");
    // The workers, all started now: none is ever created per connection.
    if (workers_.empty()) {
        std::string why;
        const int total = opt_.worker_threads + opt_.light_worker_threads;
        for (int i = 0; i < total; ++i) {
            const bool light = i >= opt_.worker_threads;
            try {
                workers_.emplace_back([this, light] { worker_main(light); });
            } catch (const std::exception& e) {
                why = e.what();
                break;
            }
        }
        if ((int)workers_.size() < total) {
            // Fewer than asked: serve with what there is (the first ones take every request).
            if (workers_.empty()) throw Error("cannot start the HTTP worker threads: " + why);
            fprintf(stderr, "yiti serve: warning: only %zu of %d HTTP worker threads could be started (%s)\n",
                    workers_.size(), total, why.c_str());
        }
    }
    // Room for every connection a worker may hand back, so that handing back never allocates
    // (it runs after an out-of-memory failure too).
    {
        std::lock_guard<std::mutex> lk(q_mu_);
        const size_t room = (size_t)opt_.max_connections + workers_.size() + 16;
        returned_.reserve(room);
        taken_.reserve(room);
    }
    epoll_event lev{};
    lev.events = EPOLLIN;
    lev.data.fd = listen_fd_;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &lev) != 0) throw Error(strprintf("epoll_ctl: %s", strerror(errno)));
    auto last_sweep = clock_type::now();
    epoll_event evs[128];
    while (!stopping_) {
        int n = ::epoll_wait(epoll_fd_, evs, 128, 100);
        if (n < 0 && errno != EINTR) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            continue;
        }
        for (int i = 0; i < n && !stopping_; ++i) {
            const int fd = evs[i].data.fd;
            if (fd == wake_fd_) {
                uint64_t v;
                (void)!::read(wake_fd_, &v, sizeof v);
                continue;
            }
            if (fd == listen_fd_) {
                accept_all();
                continue;
            }
            auto it = conns_.find(fd);
            if (it == conns_.end()) continue;
            ConnPtr c = it->second;
            try {
                on_event(c, evs[i].events);
            } catch (const std::bad_alloc&) {
                // No memory for this connection's request: tell it so (the answer is prepared).
                ::send(c->fd, oom_answer_.data(), oom_answer_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
                count(&ServerCounters::over_capacity);
                close_conn(c);
            }
        }
        take_back_returned();
        const auto now = clock_type::now();
        if (now - last_sweep >= std::chrono::milliseconds(100)) {
            last_sweep = now;
            try {
                sweep();
            } catch (const std::bad_alloc&) {
                // Tried again at the next sweep.
            }
        }
    }
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
}

// A connection the server cannot take: a short 503, written without blocking, and closed.
void Server::overloaded(int fd, const char* why) {
    std::string resp;
    try {
        resp = error_answer(503, why);
    } catch (const std::bad_alloc&) {
        resp = oom_answer_;
    }
    ::send(fd, resp.data(), resp.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
    count(&ServerCounters::over_capacity);
}

void Server::accept_all() {
    for (int k = 0; k < 64; ++k) {
        sockaddr_storage ss{};
        socklen_t sl = sizeof ss;
        int fd = ::accept4(listen_fd_, (sockaddr*)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR) continue;
            if ((errno == EMFILE || errno == ENFILE) && spare_fd_ >= 0) {
                // Out of descriptors: give up the spare one to answer this client, then take it back.
                ::close(spare_fd_);
                spare_fd_ = -1;
                int cfd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (cfd >= 0) overloaded(cfd, "the server has no file descriptors left for another connection; retry later");
                spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Nothing to answer with: leave it in the backlog for a moment.
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
            return;  // EAGAIN: all taken
        }
        if (spare_fd_ < 0) spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (n_conns_.load() >= opt_.max_connections) {
            // Make room by closing the kept-alive connection idle the longest, if there is one.
            ConnPtr victim;
            for (auto& [f, c] : conns_)
                if (c->st == Conn::St::Idle && c->buf.empty() && (!victim || c->deadline < victim->deadline)) victim = c;
            if (victim) {
                close_conn(victim);
                count(&ServerCounters::idle_evicted);
            } else {
                overloaded(fd, "too many connections; retry later");
                continue;
            }
        }
        ConnPtr c;
        try {
            c = std::make_shared<Conn>();
            c->fd = fd;
            char addr[INET6_ADDRSTRLEN] = "?";
            if (ss.ss_family == AF_INET)
                inet_ntop(AF_INET, &((sockaddr_in*)&ss)->sin_addr, addr, sizeof addr);
            else if (ss.ss_family == AF_INET6)
                inet_ntop(AF_INET6, &((sockaddr_in6*)&ss)->sin6_addr, addr, sizeof addr);
            c->remote = addr;
            c->io_timeout_ms = opt_.io_timeout_seconds * 1000;
            c->deadline = clock_type::now() + std::chrono::seconds(opt_.keep_alive_seconds);
            conns_.emplace(fd, c);
        } catch (const std::bad_alloc&) {
            if (c) c->fd = -1;
            ::send(fd, oom_answer_.data(), oom_answer_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            ::close(fd);
            count(&ServerCounters::over_capacity);
            continue;
        }
        n_conns_++;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!watch(*c, EPOLLIN | EPOLLRDHUP)) close_conn(c);
    }
}

void Server::close_conn(const ConnPtr& c) {
    if (c->fd < 0) return;
    if (c->in_epoll) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
    c->in_epoll = false;
    release(*c);
    free_body(c->req.body);
    conns_.erase(c->fd);
    ::close(c->fd);
    c->fd = -1;
    n_conns_--;
}

void Server::on_event(const ConnPtr& c, uint32_t events) {
    if (c->st == Conn::St::Queued || c->st == Conn::St::Working) return;  // (not watched then)
    if (events & EPOLLOUT) {
        flush_out(*c);
        if (c->fd < 0) return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        // At most 256 KiB per wake-up: a fast sender does not starve the others.
        char tmp[65536];
        bool eof = false;
        for (int k = 0; k < 4; ++k) {
            ssize_t n = ::recv(c->fd, tmp, sizeof tmp, 0);
            if (n > 0) {
                if (c->st == Conn::St::Closing) continue;  // lingering: read and drop
                c->buf.append(tmp, (size_t)n);
                if ((size_t)n < sizeof tmp) break;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            eof = true;  // closed or reset
            break;
        }
        if (c->st == Conn::St::Closing) {
            if (eof) close_conn(c);
            return;
        }
        advance(c);
        if (c->fd < 0) return;
        if (eof && (c->st == Conn::St::Idle || c->st == Conn::St::Head)) {
            close_conn(c);  // gone before a whole request: nobody to answer
        } else if (eof && c->st == Conn::St::Body) {
            answer_and_close(*c, 400, "the request body ended early");
            close_conn(c);
        }
    }
}

// Makes what progress the received bytes allow: head, body, then hands the request to a worker.
void Server::advance(const ConnPtr& cp) {
    Conn& c = *cp;
    if (c.st == Conn::St::Idle) {
        // Empty lines before a request line are ignored (RFC 9112 2.2).
        size_t skip = 0;
        while (skip < c.buf.size() && (c.buf[skip] == '\r' || c.buf[skip] == '\n') && skip < 64) ++skip;
        if (skip) c.buf.erase(0, skip);
        if (c.buf.empty()) return;
        c.st = Conn::St::Head;
        c.t0 = clock_type::now();
        c.deadline = c.t0 + std::chrono::seconds(opt_.header_timeout_seconds);
        c.scan = 0;
        c.line_checked = false;
        c.req.remote = c.remote;
    }
    if (c.st == Conn::St::Head) {
        // Not HTTP at all (a TLS ClientHello, a stray protocol): say so now, not after a timeout.
        const unsigned char first = (unsigned char)c.buf[0];
        if (first < 'A' || first > 'Z') {
            const bool tls = first == 0x16;
            answer_and_close(c, 400, tls ? "this server speaks plain HTTP, not HTTPS (TLS)" : "this is not an HTTP request");
            return;
        }
        if (!c.line_checked) {
            size_t eol = c.buf.find('\n');
            if (eol == std::string::npos) {
                if (c.buf.size() > opt_.max_header_bytes) answer_and_close(c, 431, "the request line is too large");
                return;
            }
            std::string err;
            int st = check_request_line(strip_cr(std::string_view(c.buf).substr(0, eol)), nullptr, &err);
            if (st) {
                answer_and_close(c, st, err);
                return;
            }
            c.line_checked = true;
        }
        size_t head_len = 0;
        size_t end = find_head_end(c.buf, c.scan, &head_len);
        if (end == std::string::npos) {
            c.scan = c.buf.size() >= 3 ? c.buf.size() - 3 : 0;
            if (c.buf.size() > opt_.max_header_bytes) answer_and_close(c, 431, "the request line and headers are too large");
            return;
        }
        if (head_len > opt_.max_header_bytes) {
            answer_and_close(c, 431, "the request line and headers are too large");
            return;
        }
        if (!parse_head(c, head_len, end)) return;
    }
    if (c.st == Conn::St::Body) {
        if (!read_body(c)) return;
    }
    if (c.st == Conn::St::Queued) dispatch(cp);
}

// Parses the head in c.buf[0, head_len) and sets up the body. False when it answered an error.
bool Server::parse_head(Conn& c, size_t head_len, size_t consumed) {
    Request& req = c.req;
    std::string_view head(c.buf.data(), head_len);
    size_t eol = head.find('\n');
    std::string err;
    int st = check_request_line(strip_cr(head.substr(0, eol)), &req, &err);
    if (st) {
        answer_and_close(c, st, err);
        return false;
    }
    size_t q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string::npos) req.query = req.target.substr(q + 1);
    // Absolute-form targets (proxies) carry the scheme and host.
    if (req.path.rfind("http://", 0) == 0 || req.path.rfind("https://", 0) == 0) {
        size_t p = req.path.find('/', req.path.find("//") + 2);
        req.path = p == std::string::npos ? "/" : req.path.substr(p);
    }
    size_t pos = eol == std::string_view::npos ? head.size() : eol + 1;
    while (pos < head.size()) {
        size_t e = head.find('\n', pos);
        if (e == std::string_view::npos) e = head.size();
        std::string_view h = head.substr(pos, e - pos);
        pos = e + 1;
        if (!h.empty() && h.back() == '\r') h.remove_suffix(1);
        if (h.empty()) continue;
        if (h.find('\r') != std::string_view::npos) {
            answer_and_close(c, 400, "a bare CR in a header line");
            return false;
        }
        if (h.front() == ' ' || h.front() == '\t') {
            answer_and_close(c, 400, "folded header lines are not supported");
            return false;
        }
        size_t colon = h.find(':');
        if (colon == std::string_view::npos || colon == 0) {
            answer_and_close(c, 400, "malformed header line");
            return false;
        }
        std::string name = lower(h.substr(0, colon));
        for (char ch : name)
            if (ch <= 0x20 || ch >= 0x7f) {
                answer_and_close(c, 400, "malformed header name");
                return false;
            }
        req.headers.emplace_back(std::move(name), std::string(trim(h.substr(colon + 1))));
        if (req.headers.size() > 200) {
            answer_and_close(c, 431, "too many headers");
            return false;
        }
    }
    c.buf.erase(0, consumed);

    const std::string conn_hdr = req.header("connection");
    c.keep_alive = req.version_minor == 1 ? !has_token(conn_hdr, "close") : has_token(conn_hdr, "keep-alive");

    const std::string te = req.header("transfer-encoding");
    c.chunked = !te.empty();
    int64_t content_length = -1;
    for (auto& [k, v] : req.headers) {
        if (k != "content-length") continue;
        if (v.empty() || v.size() > 18) {
            answer_and_close(c, 400, "invalid Content-Length");
            return false;
        }
        int64_t n = 0;
        for (char ch : v) {
            if (!std::isdigit((unsigned char)ch)) {
                answer_and_close(c, 400, "invalid Content-Length");
                return false;
            }
            n = n * 10 + (ch - '0');
        }
        if (content_length >= 0 && n != content_length) {
            answer_and_close(c, 400, "conflicting Content-Length headers");
            return false;
        }
        content_length = n;
    }
    if (c.chunked) {
        if (lower(trim(te)) != "chunked") {
            answer_and_close(c, 501, "unsupported Transfer-Encoding '" + te + "'");
            return false;
        }
        if (content_length >= 0) {
            answer_and_close(c, 400, "both Content-Length and Transfer-Encoding given");
            return false;
        }
    }
    if (content_length > (int64_t)opt_.max_body_bytes) {
        answer_and_close(c, 413, strprintf("the request body is too large (%lld bytes; the limit is %zu)",
                                           (long long)content_length, opt_.max_body_bytes));
        return false;
    }
    if (opt_.admit) {
        Refusal r = opt_.admit(req);
        if (r.status) {
            count(&ServerCounters::refused);
            answer_and_close(c, r.status, r.message, r.headers);
            return false;
        }
    }
    if (content_length > 0) {
        if (!charge(c, (size_t)content_length)) return false;
        req.body.reserve((size_t)content_length);
    }
    c.body_left = content_length > 0 ? content_length : 0;
    c.chunk_phase = 0;
    c.chunk_left = 0;
    c.trailer_bytes = 0;
    c.body_start = clock_type::now();
    // Chunked bodies get their time as their chunks are announced.
    c.deadline = body_deadline(c.body_start, c.chunked ? 0 : (size_t)c.body_left, opt_);
    if (!c.chunked && c.body_left == 0) {
        c.st = Conn::St::Queued;
        return true;
    }
    if (has_token(req.header("expect"), "100-continue") && req.version_minor == 1 && c.buf.empty()) {
        static const char k_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ::send(c.fd, k_continue, sizeof k_continue - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    c.st = Conn::St::Body;
    return true;
}

// Moves received body bytes into the request. False while more must come or after an error.
bool Server::read_body(Conn& c) {
    Request& req = c.req;
    if (!c.chunked) {
        const size_t take = (size_t)std::min<int64_t>(c.body_left, (int64_t)c.buf.size());
        req.body.append(c.buf, 0, take);
        c.buf.erase(0, take);
        c.body_left -= (int64_t)take;
        if (c.body_left > 0) return false;
        c.st = Conn::St::Queued;
        return true;
    }
    for (;;) {
        if (c.chunk_phase == 0) {  // size line
            size_t le = c.buf.find('\n');
            if (le == std::string::npos) {
                if (c.buf.size() > 1024) {
                    answer_and_close(c, 400, "malformed chunk size line");
                    return false;
                }
                return false;
            }
            std::string size_line = strip_cr(std::string_view(c.buf).substr(0, le));
            size_t semi = size_line.find(';');
            if (semi != std::string::npos) size_line.resize(semi);
            std::string_view sz = trim(size_line);
            if (sz.empty() || sz.size() > 15) {
                answer_and_close(c, 400, "malformed chunk size");
                return false;
            }
            uint64_t n = 0;
            for (char ch : sz) {
                if (!std::isxdigit((unsigned char)ch)) {
                    answer_and_close(c, 400, "malformed chunk size");
                    return false;
                }
                n = n * 16 + (uint64_t)(std::isdigit((unsigned char)ch) ? ch - '0' : (std::tolower(ch) - 'a' + 10));
            }
            c.buf.erase(0, le + 1);
            if (n == 0) {
                c.chunk_phase = 3;
                continue;
            }
            if (req.body.size() + n > opt_.max_body_bytes) {
                answer_and_close(c, 413, strprintf("the request body is too large (the limit is %zu bytes)", opt_.max_body_bytes));
                return false;
            }
            if (!charge(c, (size_t)n)) return false;
            c.chunk_left = n;
            c.chunk_phase = 1;
            c.deadline = body_deadline(c.body_start, c.charged, opt_);
        }
        if (c.chunk_phase == 1) {  // data
            const size_t take = (size_t)std::min<uint64_t>(c.chunk_left, c.buf.size());
            req.body.append(c.buf, 0, take);
            c.buf.erase(0, take);
            c.chunk_left -= take;
            if (c.chunk_left > 0) return false;
            c.chunk_phase = 2;
        }
        if (c.chunk_phase == 2) {  // the line break after the data
            if (c.buf.empty() || (c.buf.size() == 1 && c.buf[0] == '\r')) return false;
            if (c.buf.compare(0, 2, "\r\n") == 0) {
                c.buf.erase(0, 2);
            } else if (c.buf[0] == '\n') {
                c.buf.erase(0, 1);
            } else {
                answer_and_close(c, 400, "malformed chunk");
                return false;
            }
            c.chunk_phase = 0;
            continue;
        }
        if (c.chunk_phase == 3) {  // trailers, up to an empty line
            for (;;) {
                size_t le = c.buf.find('\n');
                if (le == std::string::npos) {
                    if (c.trailer_bytes + c.buf.size() > opt_.max_header_bytes) {
                        answer_and_close(c, 431, "trailers too large");
                        return false;
                    }
                    return false;
                }
                c.trailer_bytes += le + 1;
                const bool empty = le == 0 || (le == 1 && c.buf[0] == '\r');
                c.buf.erase(0, le + 1);
                if (c.trailer_bytes > opt_.max_header_bytes) {
                    answer_and_close(c, 431, "trailers too large");
                    return false;
                }
                if (empty) {
                    c.st = Conn::St::Queued;
                    return true;
                }
            }
        }
    }
}

// An error the I/O thread answers itself: the answer, then a half close and a short linger that
// swallows what the client still sends (so that it reads the answer, not a reset).
void Server::answer_and_close(Conn& c, int status, const std::string& message,
                              const std::vector<std::pair<std::string, std::string>>& extra) {
    if (status == 408)
        count(&ServerCounters::timeouts);
    else if (status == 503)
        count(&ServerCounters::over_capacity);
    else if (status != 403 && status != 421)  // (refusals are counted by the admission check)
        count(&ServerCounters::malformed);
    size_t body_bytes = 0;
    c.out = error_answer(status, message, extra, &body_bytes);
    c.out_off = 0;
    log_line(c.req, status, body_bytes, c.t0 == clock_type::time_point{} ? 0.0 : ms_between(c.t0, clock_type::now()), "");
    release(c);
    free_body(c.req.body);
    c.buf.clear();
    c.st = Conn::St::Closing;
    c.deadline = clock_type::now() + std::chrono::seconds(2);
    flush_out(c);
}

void Server::flush_out(Conn& c) {
    while (c.out_off < c.out.size()) {
        ssize_t n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            watch(c, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
            return;
        }
        if (n <= 0) {
            c.out_off = c.out.size();
            break;
        }
        c.out_off += (size_t)n;
    }
    std::string().swap(c.out);
    c.out_off = 0;
    if (!c.wr_shut) {
        ::shutdown(c.fd, SHUT_WR);
        c.wr_shut = true;
    }
    watch(c, EPOLLIN | EPOLLRDHUP);
}

void Server::dispatch(const ConnPtr& c) {
    if (c->in_epoll) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
    c->in_epoll = false;
    c->st = Conn::St::Queued;
    const std::string& m = c->req.method;
    const bool light = m == "GET" || m == "HEAD" || m == "OPTIONS";
    {
        std::lock_guard<std::mutex> lk(q_mu_);
        (light && opt_.light_worker_threads > 0 ? light_q_ : heavy_q_).push_back(c);
    }
    q_cv_.notify_all();
}

// Deadlines: idle kept-alive connections close, slow heads and bodies get 408, lingering closes end.
void Server::sweep() {
    const auto now = clock_type::now();
    std::vector<ConnPtr> due;
    for (auto& [fd, c] : conns_)
        if ((c->st == Conn::St::Idle || c->st == Conn::St::Head || c->st == Conn::St::Body || c->st == Conn::St::Closing) &&
            now >= c->deadline)
            due.push_back(c);
    for (auto& c : due) {
        switch (c->st) {
            case Conn::St::Idle: close_conn(c); break;
            case Conn::St::Head:
                answer_and_close(*c, 408, strprintf("the request headers did not arrive within %d s", opt_.header_timeout_seconds));
                break;
            case Conn::St::Body:
                answer_and_close(*c, 408, "the request body did not arrive in time");
                break;
            default: close_conn(c); break;
        }
    }
}

void Server::take_back_returned() {
    {
        std::lock_guard<std::mutex> lk(q_mu_);
        taken_.swap(returned_);  // both keep their capacity: handing back never allocates
    }
    for (auto& [c, keep] : taken_) {
        try {
            if (!keep || stopping_) {
                close_conn(c);
                continue;
            }
            c->reset_for_next(opt_);
            if (!watch(*c, EPOLLIN | EPOLLRDHUP)) {
                close_conn(c);
                continue;
            }
            if (!c->buf.empty()) advance(c);  // a pipelined request already here
        } catch (const std::bad_alloc&) {
            ::send(c->fd, oom_answer_.data(), oom_answer_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            close_conn(c);
        }
    }
    taken_.clear();
}

void Server::hand_back(const ConnPtr& c, bool keep) {
    {
        std::lock_guard<std::mutex> lk(q_mu_);
        returned_.emplace_back(c, keep);
        working_--;
    }
    q_cv_.notify_all();
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
}

void Server::worker_main(bool light_only) {
    // Nothing here may end the thread but quit_: an exception escaping it would end the process.
    for (;;) {
        ConnPtr c;
        {
            std::unique_lock<std::mutex> lk(q_mu_);
            q_cv_.wait(lk, [&] { return quit_ || !light_q_.empty() || (!light_only && !heavy_q_.empty()); });
            if (quit_) return;
            if (!light_q_.empty()) {
                c = std::move(light_q_.front());
                light_q_.pop_front();
            } else {
                c = std::move(heavy_q_.front());
                heavy_q_.pop_front();
            }
            working_++;
            c->st = Conn::St::Working;
        }
        bool keep = false;
        try {
            keep = respond(*c);
        } catch (const std::bad_alloc&) {
            // (The answer may have begun: then the client sees it cut off, as with a broken connection.)
            if (!c->broken) ::send(c->fd, oom_answer_.data(), oom_answer_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            keep = false;
        } catch (...) {
            keep = false;
        }
        c->req.client_gone = nullptr;
        // The body's memory goes back now, not when the connection does.
        buffered_ -= c->charged;
        c->charged = 0;
        free_body(c->req.body);
        hand_back(c, keep);
    }
}

// Runs the handler for a complete request and writes its answer. True to keep the connection.
bool Server::respond(Conn& c) {
    Request& req = c.req;
    const auto t0 = c.t0;
    bool ka = c.keep_alive;
    req.client_gone = [&c] { return c.peer_closed(); };
    Response res;
    try {
        handler_(req, res);
    } catch (const std::bad_alloc&) {
        res = Response();
        res.status = 503;
        res.body = opt_.error_body(503, "the server ran out of memory for this request; retry later");
        res.set_header("Content-Type", "application/json");
        res.set_header("Retry-After", std::to_string(opt_.retry_after_seconds));
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
    req.client_gone = nullptr;
    log_line(req, res.status, bytes, ms_between(t0, clock_type::now()), res.log_note);
    if (!ka && !c.broken) ::shutdown(c.fd, SHUT_WR);
    return ka && !c.broken;
}

void Server::stop(int grace_ms) {
    stopping_ = true;
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
    if (listen_fd_ >= 0) {
        ::close(listen_fd_);
        listen_fd_ = -1;
    }
    // Connections the I/O thread holds (idle, half-received, closing) go now; requests already
    // complete may still be answered.
    {
        std::vector<ConnPtr> now;
        for (auto& [fd, c] : conns_)
            if (c->st != Conn::St::Queued && c->st != Conn::St::Working) now.push_back(c);
        for (auto& c : now) close_conn(c);
    }
    const auto deadline = clock_type::now() + std::chrono::milliseconds(grace_ms);
    for (;;) {
        take_back_returned();
        bool busy;
        {
            std::lock_guard<std::mutex> lk(q_mu_);
            busy = working_ > 0 || (!workers_.empty() && (!light_q_.empty() || !heavy_q_.empty()));
        }
        if (!busy || clock_type::now() >= deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // Whatever still runs: its writes fail and its client looks gone.
    {
        std::lock_guard<std::mutex> lk(q_mu_);
        quit_ = true;
        for (auto& [fd, c] : conns_)
            if (c->st == Conn::St::Working) ::shutdown(c->fd, SHUT_RDWR);
        light_q_.clear();
        heavy_q_.clear();
    }
    q_cv_.notify_all();
    for (auto& t : workers_)
        if (t.joinable()) t.join();
    workers_.clear();
    take_back_returned();
    std::vector<ConnPtr> rest;
    for (auto& [fd, c] : conns_) rest.push_back(c);
    for (auto& c : rest) close_conn(c);
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

}  // namespace yiti::server::http
