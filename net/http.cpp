#include "net/http.hpp"

#include "lifecycle/json_text.hpp"

namespace quiesce::net {

response json_response(http::status status, const boost::json::value& body) {
  response res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::server, "quiesce");
  res.body() = lifecycle::json_text(body);
  res.prepare_payload();
  return res;
}

response error_response(http::status status, std::string_view code, std::string_view detail) {
  return json_response(status, boost::json::object{{"error", code}, {"detail", detail}});
}

}  // namespace quiesce::net
