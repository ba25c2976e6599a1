// The heartbeat of the shared store: every --lease-seconds / 3 a replica says it lives, renews the
// leases of what it runs, rescues expired ones, counts its live peers and the service's tasks, and
// prunes what is past retention.
#include "support/log.hpp"
#include "tasks/pg/naps.hpp"
#include "tasks/pg/rows.hpp"
#include "tasks/pg/shared_service.hpp"

#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/system/system_error.hpp>

#include <unordered_map>

namespace quiesce::tasks::pg {
namespace asio = boost::asio;
using std::chrono::milliseconds;

asio::awaitable<void> shared_service::heartbeat() {
  try {
    for (;;) {
      beat_soon_ = false;
      co_await beat();
      if (!beat_soon_) co_await nap(beat_wake_, settings_.lease / 3);
    }
  } catch (const boost::system::system_error&) {
    // The end of the process: nothing runs any more.
  }
}

// One heartbeat: say we live (and whether we drain), renew our leases (learning of cancels and
// of leases lost while we were away), rescue expired ones, count live peers and the tasks, and
// forget finished tasks past the retention.
asio::awaitable<void> shared_service::beat() {
  bool draining = !accepting_;
  try {
    co_await say_alive(draining);
    co_await renew_leases();
    co_await rescue_expired();
    co_await count_peers(draining);
    co_await count_tasks();
    co_await prune();
  } catch (const db_error& e) {
    if (!e.lost) log::error("heartbeat refused by the database", {{"error", e.what()}});
  }
  claimer_wake_.notify_all();
}

asio::awaitable<void> shared_service::say_alive(bool draining) {
  static const std::string alive =
      "INSERT INTO quiesce_replicas (id, pod, heartbeat_at, draining) VALUES ($1, $2, now(), $3) "
      "ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), draining = $3";
  co_await pool_.exec(alive, replica_, settings_.pod, draining ? "true" : "false");
}

// Only what runs here: a task whose end could not be stored must not be held forever. A task
// missing from the answer, or held at another attempt, was lost; one flagged is cancelled.
asio::awaitable<void> shared_service::renew_leases() {
  static const std::string renew =
      "UPDATE quiesce_tasks SET lease_until = now() + $2 * interval '1 millisecond' "
      "WHERE owner = $1 AND status = 'running' "
      "AND id IN (SELECT jsonb_array_elements_text($3::jsonb)) "
      "RETURNING id, attempt, cancel_requested";
  // A task claimed after the renewal was sent may be missing from its answer, and is not lost.
  auto renewal_sent = std::chrono::steady_clock::now();
  boost::json::array ids;
  for (auto& [id, h] : running_) ids.emplace_back(id);
  auto mine =
      co_await pool_.exec(renew, replica_, ms(settings_.lease), boost::json::serialize(ids));
  std::unordered_map<std::string, std::pair<int, bool>> held;
  for (int i = 0; i < mine.rows(); ++i)
    held.emplace(mine.get(i, 0),
                 std::pair{static_cast<int>(mine.integer(i, 1)), mine.get(i, 2) == "t"});
  for (auto& [id, h] : running_) {
    if (h->ended || h->claimed >= renewal_sent) continue;
    auto it = held.find(id);
    if (it == held.end() || it->second.first != h->record.attempt)
      stop_run(id, true);
    else if (it->second.second && !h->abort.abort_requested())
      stop_run(id, false);
  }
}

asio::awaitable<void> shared_service::rescue_expired() {
  static const std::string rescue = R"sql(
WITH lost AS MATERIALIZED (
  SELECT id FROM quiesce_tasks WHERE status = 'running' AND lease_until < now()
  FOR UPDATE SKIP LOCKED)
UPDATE quiesce_tasks t
SET status = CASE WHEN t.cancel_requested THEN 'cancelled' ELSE 'queued' END,
    finished_us = CASE WHEN t.cancel_requested THEN $1::bigint END,
    message = CASE WHEN t.cancel_requested THEN 'Task ' || t.id || ' cancelled'
              ELSE 'Task ' || t.id || ' requeued: the replica running it stopped renewing its lease'
              END,
    owner = NULL, lease_until = NULL, started_us = NULL, progress = 0
FROM lost WHERE t.id = lost.id
RETURNING )sql" + task_columns("t.");
  auto rescued = co_await pool_.exec(rescue, micros(std::chrono::system_clock::now()));
  for (int i = 0; i < rescued.rows(); ++i) {
    auto t = read_task(rescued, i);
    log::warn("task rescued from a replica that stopped renewing its lease",
              {{"task_id", t.id}, {"status", to_string(t.status)}, {"attempt", t.attempt}});
    observed(t);
  }
  if (rescued.rows()) {
    co_await pool_.exec("SELECT pg_notify('quiesce_work', '')");
    wake_claimer();
  }
}

asio::awaitable<void> shared_service::count_peers(bool draining) {
  static const std::string peers =
      "SELECT count(*) FROM quiesce_replicas WHERE id <> $1 AND NOT draining "
      "AND heartbeat_at > now() - $2 * interval '1 millisecond'";
  auto p = co_await pool_.exec(peers, replica_, ms(settings_.lease));
  live_peers_ = static_cast<std::size_t>(p.integer(0, 0));
  if (draining) peers_known_ = true;
}

asio::awaitable<void> shared_service::count_tasks() {
  auto c = co_await pool_.exec("SELECT status, count(*) FROM quiesce_tasks GROUP BY status");
  task_counts counted;
  for (int i = 0; i < c.rows(); ++i) {
    auto n = static_cast<std::size_t>(c.integer(i, 1));
    for (std::size_t s = 0; s < status_count; ++s)
      if (to_string(static_cast<task_status>(s)) == c.get(i, 0)) counted.by_status[s] = n;
  }
  counted.queued = counted.by_status[static_cast<std::size_t>(task_status::queued)];
  counted.running = counted.by_status[static_cast<std::size_t>(task_status::running)];
  std::lock_guard lock(counts_mutex_);
  counts_ = counted;
}

asio::awaitable<void> shared_service::prune() {
  static const std::string tasks =
      "DELETE FROM quiesce_tasks WHERE id IN (SELECT id FROM quiesce_tasks "
      "WHERE finished_us IS NOT NULL ORDER BY finished_us DESC OFFSET $1)";
  static const std::string events =
      "DELETE FROM quiesce_events WHERE seq <= (SELECT last_seq FROM quiesce_event_counter) - $1";
  static const std::string replicas =
      "DELETE FROM quiesce_replicas WHERE heartbeat_at < now() - interval '1 hour'";
  co_await pool_.exec(tasks, std::to_string(settings_.task_retention));
  co_await pool_.exec(events, std::to_string(settings_.event_retention));
  co_await pool_.exec(replicas);
}

}  // namespace quiesce::tasks::pg
