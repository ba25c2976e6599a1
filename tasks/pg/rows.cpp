#include "tasks/pg/rows.hpp"

#include "tasks/task_json.hpp"

#include <boost/json/parse.hpp>

#include <array>
#include <charconv>
#include <stdexcept>

namespace quiesce::tasks::pg {

namespace {

constexpr std::array<const char*, task_column_count> columns = {
    "id",         "kind",       "params",      "status",   "progress",     "message",
    "created_us", "started_us", "finished_us", "result",   "error",        "idempotency_key",
    "attempt",    "checkpoint", "output",      "priority", "max_attempts", "timeout_seconds",
    "run_at_us",  "errors"};

task_status status_from(std::string_view text) {
  for (std::size_t i = 0; i < status_count; ++i) {
    auto s = static_cast<task_status>(i);
    if (to_string(s) == text) return s;
  }
  throw std::runtime_error("a stored task has an unknown status '" + std::string(text) + "'");
}

task_record::time_point time_from(const result& r, int row, int col) {
  return task_record::time_point(std::chrono::microseconds(r.integer(row, col)));
}

}  // namespace

std::string task_columns(std::string_view prefix) {
  std::string list;
  for (auto* c : columns) {
    if (!list.empty()) list += ", ";
    list += prefix;
    list += c;
  }
  return list;
}

task_record read_task(const result& r, int row, int f) {
  task_record t;
  t.id = r.get(row, f + 0);
  t.kind = r.get(row, f + 1);
  t.params = boost::json::parse(r.get(row, f + 2)).as_object();
  t.status = status_from(r.get(row, f + 3));
  auto p = r.get(row, f + 4);
  t.progress = std::strtod(std::string(p).c_str(), nullptr);
  t.message = r.get(row, f + 5);
  t.created_at = time_from(r, row, f + 6);
  if (!r.null(row, f + 7)) t.started_at = time_from(r, row, f + 7);
  if (!r.null(row, f + 8)) t.finished_at = time_from(r, row, f + 8);
  if (!r.null(row, f + 9)) t.result = boost::json::parse(r.get(row, f + 9));
  if (!r.null(row, f + 10)) t.error = std::string(r.get(row, f + 10));
  if (!r.null(row, f + 11)) t.idempotency_key = std::string(r.get(row, f + 11));
  t.attempt = static_cast<int>(r.integer(row, f + 12));
  if (!r.null(row, f + 13)) t.checkpoint = boost::json::parse(r.get(row, f + 13));
  if (!r.null(row, f + 14)) t.output = std::string(r.get(row, f + 14));
  t.priority = static_cast<int>(r.integer(row, f + 15));
  t.max_attempts = static_cast<int>(r.integer(row, f + 16));
  if (!r.null(row, f + 17))
    t.timeout_seconds = std::strtod(std::string(r.get(row, f + 17)).c_str(), nullptr);
  if (!r.null(row, f + 18)) t.run_at = time_from(r, row, f + 18);
  t.errors = errors_from_json(boost::json::parse(r.get(row, f + 19)));
  return t;
}

std::string micros(task_record::time_point t) {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
}

param micros(const std::optional<task_record::time_point>& t) {
  if (!t) return std::nullopt;
  return micros(*t);
}

std::string number(double v) {
  std::array<char, 32> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return std::string(buf.data(), end);
}

}  // namespace quiesce::tasks::pg
