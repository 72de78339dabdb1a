#include "server/webui.h"

namespace yiti::server {
const std::string& webui_html() {
    static const std::string page = "<!doctype html><title>yiti</title><p>placeholder</p>";
    return page;
}
}  // namespace yiti::server
