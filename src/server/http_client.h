// A minimal blocking HTTP/1.1 client (one connection per request) for the load tool and tests:
// the body can be consumed as it arrives, which is what server-sent events need.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace yiti::server::http {

struct ClientResponse {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
    std::string body;  // empty when an on_data callback consumed it
    std::string header(std::string_view name) const;
};

struct Url {
    std::string host = "127.0.0.1";
    int port = 80;
    std::string path = "";  // prefix without the trailing '/'
};
// "http://host:port/prefix" (https is not supported). Throws yiti::Error.
Url parse_url(const std::string& url);

class Client {
public:
    Client(std::string host, int port, int timeout_seconds = 600);
    // Sends one request and reads the answer. on_data, when given, gets the body (de-chunked) piece
    // by piece; returning false closes the connection early. Throws yiti::Error on connection
    // failures.
    ClientResponse request(const std::string& method, const std::string& path, const std::string& body = "",
                           const std::vector<std::pair<std::string, std::string>>& headers = {},
                           const std::function<bool(std::string_view)>& on_data = {});

private:
    std::string host_;
    int port_;
    int timeout_s_;
};

// Splits a server-sent-event stream into the payloads of its "data:" lines.
class SseParser {
public:
    // Feeds bytes; calls on_event(data) for each complete event.
    void feed(std::string_view bytes, const std::function<void(const std::string&)>& on_event);

private:
    std::string buf_, data_;
    bool has_data_ = false;
};

}  // namespace yiti::server::http
