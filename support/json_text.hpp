// JSON text as people read it. Boost.JSON 1.81 prints every double in exponent form
// ("progress":0E0, "seconds":1.5E1); responses, stream frames, logs and the CLI print numbers
// the way they are written by hand instead: 0, 15, 0.25 (shortest form that reads back the same).
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <string_view>

namespace quiesce::support {

std::string json_text(const boost::json::value& v);
void append_json(std::string& out, const boost::json::value& v);
// The same for an object, which as a `value` argument would be copied first (every event and
// frame is an object).
std::string json_text(const boost::json::object& o);
void append_json(std::string& out, const boost::json::object& o);
// A JSON string: `s` quoted and escaped, for text written by hand (tasks/task_json.cpp).
void append_json_string(std::string& out, std::string_view s);

}  // namespace quiesce::support
