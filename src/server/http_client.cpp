#include "core/text.h"
#include "server/http_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace yiti::server::http {

std::string ClientResponse::header(std::string_view name) const {
    for (auto& [k, v] : headers)
        if (k == name) return v;
    return "";
}

Url parse_url(const std::string& url) {
    Url u;
    std::string s = url;
    if (s.rfind("https://", 0) == 0) throw Error("https is not supported: " + url);
    if (s.rfind("http://", 0) == 0) s = s.substr(7);
    size_t slash = s.find('/');
    std::string hostport = s.substr(0, slash);
    if (slash != std::string::npos) u.path = s.substr(slash);
    while (!u.path.empty() && u.path.back() == '/') u.path.pop_back();
    size_t colon = hostport.rfind(':');
    if (!hostport.empty() && hostport[0] == '[') {  // [v6]:port
        size_t rb = hostport.find(']');
        if (rb == std::string::npos) throw Error("bad URL: " + url);
        u.host = hostport.substr(1, rb - 1);
        colon = hostport.find(':', rb);
    } else {
        u.host = hostport.substr(0, colon);
    }
    if (colon != std::string::npos) {
        std::string p = hostport.substr(colon + 1);
        if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) throw Error("bad port in URL: " + url);
        u.port = std::stoi(p);
    }
    if (u.host.empty()) throw Error("no host in URL: " + url);
    return u;
}

Client::Client(std::string host, int port, int timeout_seconds) : host_(std::move(host)), port_(port), timeout_s_(timeout_seconds) {}

namespace {

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

ClientResponse Client::request(const std::string& method, const std::string& path, const std::string& body,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               const std::function<bool(std::string_view)>& on_data) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string ps = std::to_string(port_);
    int rc = ::getaddrinfo(host_.c_str(), ps.c_str(), &hints, &res);
    if (rc != 0) throw Error(strprintf("cannot resolve '%s': %s", host_.c_str(), gai_strerror(rc)));
    Fd s;
    std::string err = "no address";
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            s.fd = fd;
            break;
        }
        err = strerror(errno);
        ::close(fd);
    }
    freeaddrinfo(res);
    if (s.fd < 0) throw Error(strprintf("cannot connect to %s:%d: %s", host_.c_str(), port_, err.c_str()));
    int one = 1;
    setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + host_ + ":" + ps + "\r\nConnection: close\r\n";
    bool has_ct = false;
    for (auto& [k, v] : headers) {
        req += k + ": " + v + "\r\n";
        has_ct |= ascii_lower(k) == "content-type";
    }
    if (!body.empty() && !has_ct) req += "Content-Type: application/json\r\n";
    if (!body.empty() || method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n";
    req += body;
    for (size_t off = 0; off < req.size();) {
        ssize_t n = ::send(s.fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw Error(strprintf("sending to %s:%d failed: %s", host_.c_str(), port_, strerror(errno)));
        off += (size_t)n;
    }

    std::string buf;
    bool eof = false;
    auto fill = [&]() -> bool {
        if (eof) return false;
        pollfd p{s.fd, POLLIN, 0};
        int r;
        do r = ::poll(&p, 1, timeout_s_ * 1000);
        while (r < 0 && errno == EINTR);
        if (r <= 0) throw Error("timed out waiting for the server");
        char tmp[16384];
        ssize_t n;
        do n = ::recv(s.fd, tmp, sizeof tmp, 0);
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
            eof = true;
            return false;
        }
        buf.append(tmp, (size_t)n);
        return true;
    };

    ClientResponse out;
    size_t he;
    for (;;) {
        while ((he = buf.find("\r\n\r\n")) == std::string::npos)
            if (!fill()) throw Error("the server closed the connection before answering");
        // Skip interim 1xx answers.
        if (buf.compare(0, 12, "HTTP/1.1 100") == 0) {
            buf.erase(0, he + 4);
            continue;
        }
        break;
    }
    std::string head = buf.substr(0, he);
    buf.erase(0, he + 4);
    size_t eol = head.find("\r\n");
    std::string status_line = head.substr(0, eol);
    if (status_line.size() < 12 || status_line.compare(0, 5, "HTTP/") != 0) throw Error("malformed status line: " + status_line);
    out.status = std::atoi(status_line.c_str() + 9);
    size_t pos = eol == std::string::npos ? head.size() : eol + 2;
    while (pos < head.size()) {
        size_t e = head.find("\r\n", pos);
        if (e == std::string::npos) e = head.size();
        std::string line = head.substr(pos, e - pos);
        pos = e + 2;
        size_t c = line.find(':');
        if (c == std::string::npos) continue;
        std::string k = ascii_lower(line.substr(0, c)), v = line.substr(c + 1);
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        out.headers.emplace_back(k, v);
    }
    bool stop = false;
    auto deliver = [&](std::string_view d) {
        if (stop || d.empty()) return;
        if (on_data) {
            if (!on_data(d)) stop = true;
        } else {
            out.body.append(d);
        }
    };
    const std::string te = out.header("transfer-encoding");
    const std::string cl = out.header("content-length");
    if (method == "HEAD" || out.status == 204 || out.status == 304) return out;
    if (te.find("chunked") != std::string::npos) {
        for (;;) {
            size_t le;
            while ((le = buf.find("\r\n")) == std::string::npos)
                if (!fill()) throw Error("the chunked body ended early");
            size_t n = std::stoul(buf.substr(0, le), nullptr, 16);
            buf.erase(0, le + 2);
            if (n == 0) break;
            while (buf.size() < n + 2)
                if (!fill()) throw Error("the chunked body ended early");
            deliver(std::string_view(buf).substr(0, n));
            buf.erase(0, n + 2);
            if (stop) return out;
        }
    } else if (!cl.empty()) {
        size_t n = std::stoul(cl);
        while (buf.size() < n)
            if (!fill()) throw Error("the body ended early");
        deliver(std::string_view(buf).substr(0, n));
    } else {
        while (!stop) {
            deliver(buf);
            buf.clear();
            if (!fill()) break;
        }
    }
    return out;
}

void SseParser::feed(std::string_view bytes, const std::function<void(const std::string&)>& on_event) {
    buf_.append(bytes);
    size_t nl;
    while ((nl = buf_.find('\n')) != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) {
            if (has_data_) on_event(data_);
            data_.clear();
            has_data_ = false;
            continue;
        }
        if (line[0] == ':') continue;
        if (line.rfind("data:", 0) == 0) {
            std::string v = line.substr(5);
            if (!v.empty() && v[0] == ' ') v.erase(0, 1);
            if (has_data_) data_ += "\n";
            data_ += v;
            has_data_ = true;
        }
    }
}

}  // namespace yiti::server::http
