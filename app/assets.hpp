// Files of app/ compiled into the binary (see app/CMakeLists.txt), so that it serves them with
// nothing beside it.
#pragma once

#include <string_view>

namespace quiesce::app::assets {
extern const std::string_view openapi_json;  // app/openapi.json, served at /openapi.json
extern const std::string_view docs_html;     // app/docs.html, served at /docs
}  // namespace quiesce::app::assets
