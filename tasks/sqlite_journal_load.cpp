// The journal's reading half: what earlier processes left, loaded once at start-up, before the
// writer thread starts (sqlite_journal.cpp writes).
#include "tasks/sqlite_journal.hpp"
#include "tasks/sqlite_schema.hpp"
#include "tasks/sqlite_statement.hpp"
#include "tasks/task_json.hpp"

#include <boost/json/parse.hpp>

#include <algorithm>

namespace quiesce::tasks {
namespace {

using sqlite::statement;

std::chrono::system_clock::time_point from_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

task_status status_from(std::string_view s) {
  for (std::size_t i = 0; i < status_count; ++i)
    if (to_string(static_cast<task_status>(i)) == s) return static_cast<task_status>(i);
  throw sqlite::failure("unknown task status '" + std::string(s) + "' in the database");
}

}  // namespace

stored_state sqlite_journal::load() {
  stored_state st;
  try {
    st.epoch = *sqlite::meta(db_, "epoch");
    {
      statement last(db_, "SELECT coalesce(max(last_seq), 0) FROM event_batches");
      last.step();
      st.last_seq = static_cast<std::uint64_t>(last.integer(0));
    }
    statement tasks(db_,
                    "SELECT id, kind, params, status, progress, message, created_ms, started_ms,"
                    " finished_ms, result, error, idempotency_key, attempt, row_key, checkpoint,"
                    " output, priority, max_attempts, timeout_seconds, run_ms, errors FROM tasks"
                    " ORDER BY finished_seq IS NULL, finished_seq, row_key");
    while (tasks.step()) {
      task_record t;
      t.id = tasks.text(0);
      t.kind = tasks.text(1);
      t.params = boost::json::parse(tasks.text(2)).as_object();
      t.status = status_from(tasks.text(3));
      t.progress = tasks.real(4);
      t.message = tasks.text(5);
      t.created_at = from_ms(tasks.integer(6));
      if (!tasks.null(7)) t.started_at = from_ms(tasks.integer(7));
      if (!tasks.null(8)) t.finished_at = from_ms(tasks.integer(8));
      t.result = boost::json::parse(tasks.text(9));
      if (!tasks.null(10)) t.error = tasks.text(10);
      if (!tasks.null(11)) t.idempotency_key = tasks.text(11);
      t.attempt = static_cast<int>(tasks.integer(12));
      if (!tasks.null(14)) t.checkpoint = boost::json::parse(tasks.text(14));
      if (!tasks.null(15)) t.output = tasks.text(15);
      t.priority = static_cast<int>(tasks.integer(16));
      t.max_attempts = static_cast<int>(tasks.integer(17));
      if (!tasks.null(18)) t.timeout_seconds = tasks.real(18);
      if (!tasks.null(19)) t.run_at = from_ms(tasks.integer(19));
      t.errors = errors_from_json(boost::json::parse(tasks.text(20)));
      if (is_final(t.status))
        ++finished_rows_;
      else
        rows_.emplace(t.id, tasks.integer(13));
      st.tasks.push_back(std::move(t));
    }
    st.events = load_events();
  } catch (const std::exception& e) {
    // A row this version cannot read is a corrupt database: refuse, rewrite nothing.
    throw storage_error(file_.string(), std::string("cannot read the stored tasks: ") + e.what());
  }
  return st;
}

// The newest `event_retention` events, oldest first: rows newest first until there are enough.
std::vector<event_ptr> sqlite_journal::load_events() {
  std::vector<std::string> rows;
  std::size_t count = 0;
  statement batches(db_, "SELECT frames FROM event_batches ORDER BY last_seq DESC");
  while (count < settings_.event_retention && batches.step()) {
    rows.push_back(batches.text(0));
    count += static_cast<std::size_t>(std::count(rows.back().begin(), rows.back().end(), '\n')) + 1;
  }
  std::vector<event_ptr> events;
  std::size_t skip = count > settings_.event_retention ? count - settings_.event_retention : 0;
  std::reverse(rows.begin(), rows.end());
  for (const auto& row : rows) {
    std::string_view rest = row;
    while (!rest.empty()) {
      auto end = std::min(rest.find('\n'), rest.size());
      auto frame = rest.substr(0, end);
      rest.remove_prefix(std::min(end + 1, rest.size()));
      if (skip > 0) {
        --skip;
        continue;
      }
      // The frame says which event it is: its seq, and the task it is about.
      auto o = boost::json::parse(frame).as_object();
      const auto* id = o.if_contains("task_id");
      events.push_back(std::make_shared<const stream_event>(
          stream_event{o.at("seq").to_number<std::uint64_t>(),
                       id && id->is_string() ? std::string(id->get_string()) : std::string(),
                       std::string(frame)}));
    }
  }
  return events;
}

}  // namespace quiesce::tasks
