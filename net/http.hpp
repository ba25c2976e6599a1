// The HTTP vocabulary shared by sessions and routes: message types, JSON answers, errors.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace quiesce::net {

namespace http = boost::beast::http;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

// Limits every connection obeys; each is a configuration knob (defaults: app/config.hpp).
struct http_limits {
  std::size_t header_limit{};
  std::size_t body_limit{};
  std::chrono::milliseconds idle_timeout{};    // keep-alive connection with no request
  std::chrono::milliseconds header_timeout{};  // from the first byte to the whole request
};

response json_response(http::status status, const boost::json::value& body);
// The same with a body already serialised (tasks::task_text()).
response json_text_response(http::status status, std::string body);
// Every error body: {"error":"<machine_code>","detail":"<human sentence>"}.
response error_response(http::status status, std::string_view code, std::string_view detail);

// What goes on the wire before the body: the status line, the fields as set and the blank line,
// the same bytes Beast's serializer writes for a response with a Content-Length (unit.net
// checks). A session writes it and the body as two buffers: the serializer walked every field
// through nested buffer views on each write (bench/HISTORY.md).
std::string response_head(const response& res);

}  // namespace quiesce::net
