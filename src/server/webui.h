// The web chat page served at "/": one self-contained HTML document (styles and script inline,
// nothing fetched from elsewhere).
#pragma once
#include <string>

namespace yiti::server {
const std::string& webui_html();
}
