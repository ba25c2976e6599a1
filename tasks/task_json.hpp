// A task record as clients read it (docs/api.md, "Routes"): as a Boost.JSON object, and as text
// written straight from the record. Every POST answers one body and publishes three events, and
// building an object first and then serialising it was most of a task's instructions
// (bench/HISTORY.md).
#pragma once

#include "tasks/task.hpp"

#include <boost/json/object.hpp>

#include <string>

namespace quiesce::tasks {

boost::json::object to_json(const task_record& t);
// The record's `errors`, as JSON and back (how the stores keep them).
boost::json::value errors_json(const std::vector<attempt_error>& errors);
std::vector<attempt_error> errors_from_json(const boost::json::value& v);

// The same object's text, byte for byte what support::json_text(to_json(t)) gives, without its
// closing brace, so that an event can add its own keys before closing it.
std::string open_task_text(const task_record& t);
std::string task_text(const task_record& t);
// A task event's text before its seq (event_bus::publish and close_with_seq() add it): the task,
// "type":"task", and "requeued":true for a task put back in the queue.
std::string open_event_text(const task_record& t, bool requeued = false);
// What open_event_text adds to open_task_text.
void add_event_keys(std::string& open_task, bool requeued = false);

}  // namespace quiesce::tasks
