#include "stream/client_message.hpp"

#include <boost/json/parse.hpp>

#include <set>
#include <string>

namespace quiesce::stream {

namespace {

frame error_frame(std::string_view detail) {
  return make_frame({{"type", "error"}, {"error", "bad_message"}, {"detail", detail}});
}

}  // namespace

void handle_client_message(stream_client& c, std::string_view text) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) {
    c.out().push(error_frame("messages must be JSON objects"));
    return;
  }
  auto& o = v.as_object();
  auto type = o.if_contains("type");
  if (!type || !type->is_string() || type->as_string() != "subscribe") {
    c.out().push(error_frame("the only message a client sends is {\"type\":\"subscribe\",...}"));
    return;
  }
  if (auto all = o.if_contains("all"); all && all->is_bool() && all->as_bool()) {
    c.follow_all();
    c.out().push(make_frame({{"type", "subscribed"}, {"all", true}}));
    return;
  }
  auto tasks = o.if_contains("tasks");
  if (!tasks || !tasks->is_array()) {
    c.out().push(error_frame("subscribe needs \"tasks\": [ids] or \"all\": true"));
    return;
  }
  std::set<std::string> ids;
  boost::json::array echoed;
  for (auto& t : tasks->as_array()) {
    if (!t.is_string()) {
      c.out().push(error_frame("tasks must be an array of task id strings"));
      return;
    }
    ids.emplace(t.as_string());
    echoed.push_back(t);
  }
  c.follow(std::move(ids));
  c.out().push(make_frame({{"type", "subscribed"}, {"tasks", std::move(echoed)}}));
}

}  // namespace quiesce::stream
