// Scheduled tasks (a delay, a retry's backoff) become queued when due, for the whole service: one
// timer per replica for the earliest run_at it knows, learnt from the table after a (re)connect
// and from each NOTIFY that announces an earlier one, never a poll. Several replicas promoting the
// same task at once is harmless: the second UPDATE finds it queued already.
#include "support/log.hpp"
#include "tasks/pg/naps.hpp"
#include "tasks/pg/rows.hpp"
#include "tasks/pg/shared_service.hpp"
#include "tasks/task_json.hpp"

#include <boost/system/system_error.hpp>

#include <charconv>

namespace quiesce::tasks::pg {
namespace asio = boost::asio;

namespace {
std::int64_t now_micros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

asio::awaitable<void> shared_service::scheduler() {
  // One statement: what is due becomes queued (each a `queued` event, by the trigger), the
  // replicas are told if any did, and the next run_at still ahead is read (the index
  // quiesce_tasks_scheduled serves both).
  static const std::string promote = R"sql(
WITH due AS (
  UPDATE quiesce_tasks SET status = 'queued', message = 'Task ' || id || ' queued'
  WHERE status = 'scheduled' AND run_at_us <= $1 RETURNING id),
woke AS (SELECT pg_notify('quiesce_work', '') FROM (SELECT 1 FROM due LIMIT 1) AS one)
SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM woke),
       (SELECT min(run_at_us) FROM quiesce_tasks WHERE status = 'scheduled' AND run_at_us > $1))sql";
  retry_backoff backoff;
  try {
    while (accepting_) {  // a draining replica leaves what is scheduled to the others
      auto now = now_micros();
      if (schedule_unknown_ || (next_due_us_ && *next_due_us_ <= now)) {
        schedule_unknown_ = false;
        try {
          auto r = co_await pool_.exec(promote, std::to_string(now));
          if (r.integer(0, 0) > 0) wake_claimer();
          next_due_us_.reset();
          if (!r.null(0, 2)) next_due_us_ = r.integer(0, 2);
          backoff.succeeded();
        } catch (const db_error&) {
          schedule_unknown_ = true;  // the pool told the health of it
        }
        if (schedule_unknown_) co_await nap(schedule_wake_, backoff.failed());
        continue;
      }
      std::optional<std::chrono::milliseconds> wait;
      if (next_due_us_)
        wait = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::microseconds(*next_due_us_ - now)) +
               std::chrono::milliseconds(1);
      co_await nap(schedule_wake_, wait);
    }
  } catch (const boost::system::system_error&) {
    // The end of the process.
  }
}

// On db_: a NOTIFY's payload, the earliest run_at of what its sender scheduled (empty: none).
void shared_service::note_scheduled(std::string_view payload) {
  std::int64_t at = 0;
  auto [end, ec] = std::from_chars(payload.data(), payload.data() + payload.size(), at);
  if (ec != std::errc{} || end != payload.data() + payload.size()) return;
  if (next_due_us_ && *next_due_us_ <= at) return;
  next_due_us_ = at;
  schedule_wake_.notify_all();
}

// On db_: after a reconnect, what was scheduled meanwhile is read from the table.
void shared_service::reread_schedule() {
  schedule_unknown_ = true;
  schedule_wake_.notify_all();
}

// A task this replica scheduled (a failed attempt's retry): every replica's scheduler hears when.
asio::awaitable<void> shared_service::tell_scheduled(task_record::time_point at) {
  try {
    co_await pool_.exec("SELECT pg_notify('quiesce_work', $1)", micros(at));
  } catch (const db_error&) {
    reread_schedule();  // ours at least finds it; the others do after their next reconnect
  }
}

asio::awaitable<std::pair<retry_outcome, std::optional<task_record>>> shared_service::retry(
    std::string id) {
  co_return co_await on_db(retry_here(std::move(id)));
}

// The retry route, one statement: queued again if it failed, was cancelled or interrupted (the
// fields task_record::rerun() resets), with room in the queue; the replicas told.
asio::awaitable<std::pair<retry_outcome, std::optional<task_record>>> shared_service::retry_here(
    std::string id) {
  static const std::string rerun = R"sql(
WITH room AS (SELECT $2::bigint - count(*) AS n FROM quiesce_tasks
              WHERE status IN ('queued', 'scheduled')),
again AS (
  UPDATE quiesce_tasks SET status = 'queued', message = 'Task ' || id || ' queued',
    started_us = NULL, finished_us = NULL, run_at_us = NULL, error = NULL, result = NULL,
    progress = 0, cancel_requested = false,
    max_attempts = greatest(max_attempts, jsonb_array_length(errors::jsonb) + 1)
  FROM room WHERE id = $1 AND status IN ('failed', 'cancelled', 'interrupted') AND room.n > 0
  RETURNING )sql" + task_columns("quiesce_tasks.") +
                                   R"sql(),
woke AS (SELECT pg_notify('quiesce_work', '') FROM (SELECT 1 FROM again LIMIT 1) AS one)
SELECT again.*, (SELECT count(*) FROM woke) FROM again)sql";
  if (!accepting_) co_return std::pair{retry_outcome::closed, std::nullopt};
  auto r = co_await pool_.exec(rerun, id, std::to_string(settings_.queue_capacity));
  if (r.rows() == 1) {
    auto t = read_task(r, 0);
    observed(t);
    co_return std::pair{retry_outcome::retried, std::optional(std::move(t))};
  }
  auto t = co_await read_now(id);
  if (!t) co_return std::pair{retry_outcome::not_found, std::nullopt};
  if (t->status == task_status::failed || t->status == task_status::cancelled ||
      t->status == task_status::interrupted)
    co_return std::pair{retry_outcome::queue_full, std::nullopt};
  co_return std::pair{retry_outcome::not_retriable, std::move(t)};
}

}  // namespace quiesce::tasks::pg
