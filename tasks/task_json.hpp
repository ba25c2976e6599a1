// A task record as clients read it (docs/api.md, "Routes"): as a Boost.JSON object, and as text
// written straight from the record. Every POST answers one body and publishes three events, and
// building an object first and then serialising it was most of a task's instructions (callgrind).
#pragma once

#include "tasks/task.hpp"

#include <boost/json/object.hpp>

#include <string>

namespace quiesce::tasks {

boost::json::object to_json(const task_record& t);

// The same object's text, byte for byte what lifecycle::json_text(to_json(t)) gives, without its
// closing brace, so that an event can add its own keys before closing it (close_object()).
std::string open_task_text(const task_record& t);
inline std::string& close_object(std::string& open) { return open += '}'; }
inline std::string task_text(const task_record& t) {
  auto text = open_task_text(t);
  return std::move(close_object(text));
}

}  // namespace quiesce::tasks
