#include "net/http.hpp"

#include "support/json_text.hpp"

namespace quiesce::net {

response json_response(http::status status, const boost::json::value& body) {
  return json_text_response(status, support::json_text(body));
}

response json_text_response(http::status status, std::string body) {
  response res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::server, "quiesce");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

response error_response(http::status status, std::string_view code, std::string_view detail) {
  return json_response(status, boost::json::object{{"error", code}, {"detail", detail}});
}

std::string response_head(const response& res) {
  std::string head;
  head.reserve(256);
  head += "HTTP/";
  head += static_cast<char>('0' + res.version() / 10);
  head += '.';
  head += static_cast<char>('0' + res.version() % 10);
  head += ' ';
  head += std::to_string(res.result_int());
  head += ' ';
  head += res.reason();
  head += "\r\n";
  for (const auto& f : res) {
    head += f.name_string();
    head += ": ";
    head += f.value();
    head += "\r\n";
  }
  head += "\r\n";
  return head;
}

}  // namespace quiesce::net
