// Reading the server's task events and records (JSON objects), for the follower and the view.
#pragma once

#include <boost/json/object.hpp>

#include <string_view>

namespace quiesce::cli {

// The string field `key` of `o`, or "" when it is absent or not a string.
inline std::string_view field(const boost::json::object& o, std::string_view key) {
  auto v = o.if_contains(key);
  return v && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}

// The statuses a task never leaves (docs/api.md, "Task kinds and statuses").
inline bool is_final(std::string_view status) {
  return status == "succeeded" || status == "failed" || status == "cancelled" ||
         status == "interrupted";
}

}  // namespace quiesce::cli
