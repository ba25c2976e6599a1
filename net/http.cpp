#include "net/http.hpp"

#include "lifecycle/json_text.hpp"

namespace quiesce::net {

response json_response(http::status status, const boost::json::value& body) {
  return json_text_response(status, lifecycle::json_text(body));
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

}  // namespace quiesce::net
