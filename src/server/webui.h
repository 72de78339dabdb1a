// The web chat page: an HTML document at "/" with its script at "/app.js" and its styles at
// "/app.css" (nothing fetched from elsewhere). Nothing is inline, so the page runs under a strict
// Content-Security-Policy: no inline script or style, no eval, requests only to this server.
#pragma once
#include <string>

namespace yiti::server {
const std::string& webui_html();    // GET /  and /index.html
const std::string& webui_script();  // GET /app.js   (Content-Type: text/javascript; charset=utf-8)
const std::string& webui_style();   // GET /app.css  (Content-Type: text/css; charset=utf-8)
const char* webui_csp();            // the Content-Security-Policy header value for the page (and its files)
}  // namespace yiti::server
