#include "tasks/task_json.hpp"

#include "support/json_text.hpp"
#include "support/log.hpp"

namespace quiesce::tasks {
namespace json = boost::json;

json::value errors_json(const std::vector<attempt_error>& errors) {
  json::array a;
  for (auto& e : errors)
    a.push_back(
        json::object{{"attempt", e.attempt}, {"at", log::format_time(e.at)}, {"error", e.error}});
  return a;
}

std::vector<attempt_error> errors_from_json(const json::value& v) {
  std::vector<attempt_error> out;
  for (auto& e : v.as_array()) {
    auto& o = e.as_object();
    out.push_back({static_cast<int>(o.at("attempt").to_number<std::int64_t>()),
                   log::parse_time(o.at("at").as_string()).value_or(task_record::time_point{}),
                   std::string(o.at("error").as_string())});
  }
  return out;
}

// The two below list the same keys in the same order; unit.tasks checks that their texts match.
json::object to_json(const task_record& t) {
  auto time = [](const std::optional<task_record::time_point>& tp) -> json::value {
    if (!tp) return nullptr;
    return json::string(log::format_time(*tp));
  };
  // Sized once for every key and the two an event adds ("type", "requeued"): growing key by key
  // rehashed and reallocated the object several times.
  json::object o(21);
  o.emplace("task_id", t.id);
  o.emplace("kind", t.kind);
  o.emplace("params", t.params.get());
  o.emplace("status", to_string(t.status));
  o.emplace("progress", t.progress);
  o.emplace("message", t.message);
  o.emplace("created_at", log::format_time(t.created_at));
  o.emplace("started_at", time(t.started_at));
  o.emplace("finished_at", time(t.finished_at));
  o.emplace("result", t.result);
  o.emplace("error", t.error ? json::value(*t.error) : json::value(nullptr));
  o.emplace("attempt", t.attempt);
  o.emplace("priority", t.priority);
  o.emplace("max_attempts", t.max_attempts);
  o.emplace("timeout_seconds", t.timeout_seconds ? json::value(*t.timeout_seconds) : nullptr);
  o.emplace("run_at", time(t.run_at));
  o.emplace("errors", errors_json(t.errors));
  o.emplace("checkpoint", t.checkpoint);
  o.emplace("output", t.output ? json::value(*t.output) : json::value(nullptr));
  return o;
}

std::string open_task_text(const task_record& t) {
  using support::append_json;
  using support::append_json_string;
  auto time = [](std::string& out, const std::optional<task_record::time_point>& tp) {
    if (!tp) {
      out += "null";
      return;
    }
    out += '"';
    log::append_time(out, *tp);
    out += '"';
  };
  std::string out;
  out.reserve(512);  // a default task's event is about 330 bytes, and one allocation
  out += "{\"task_id\":";
  append_json_string(out, t.id);
  out += ",\"kind\":";
  append_json_string(out, t.kind);
  out += ",\"params\":";
  append_json(out, t.params.get());
  out += ",\"status\":\"";
  out += to_string(t.status);  // a fixed word, nothing to escape
  out += "\",\"progress\":";
  append_json(out, json::value(t.progress));
  out += ",\"message\":";
  append_json_string(out, t.message);
  out += ",\"created_at\":";
  time(out, t.created_at);
  out += ",\"started_at\":";
  time(out, t.started_at);
  out += ",\"finished_at\":";
  time(out, t.finished_at);
  out += ",\"result\":";
  append_json(out, t.result);
  out += ",\"error\":";
  if (t.error)
    append_json_string(out, *t.error);
  else
    out += "null";
  out += ",\"attempt\":";
  append_json(out, json::value(t.attempt));
  out += ",\"priority\":";
  append_json(out, json::value(t.priority));
  out += ",\"max_attempts\":";
  append_json(out, json::value(t.max_attempts));
  out += ",\"timeout_seconds\":";
  append_json(out, t.timeout_seconds ? json::value(*t.timeout_seconds) : json::value(nullptr));
  out += ",\"run_at\":";
  time(out, t.run_at);
  out += ",\"errors\":";
  if (t.errors.empty())
    out += "[]";
  else
    append_json(out, errors_json(t.errors));
  out += ",\"checkpoint\":";
  append_json(out, t.checkpoint);
  out += ",\"output\":";
  if (t.output)
    append_json_string(out, *t.output);
  else
    out += "null";
  return out;
}

std::string task_text(const task_record& t) {
  auto body = open_task_text(t);
  body += '}';
  return body;
}

void add_event_keys(std::string& open_task, bool requeued) {
  open_task += requeued ? R"(,"type":"task","requeued":true)" : R"(,"type":"task")";
}

std::string open_event_text(const task_record& t, bool requeued) {
  auto body = open_task_text(t);
  add_event_keys(body, requeued);
  return body;
}

}  // namespace quiesce::tasks
