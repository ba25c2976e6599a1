// The shared queue as the workers' engine (task_engine.hpp): the claimer takes queued tasks for
// this replica's idle workers (worker_pool.cpp runs them), each attempt's writes are fenced by
// (owner, attempt), and the drain waits for them. The heartbeat is in shared_heartbeat.cpp, the
// listener and the event follower in shared_listener.cpp.
#include "support/log.hpp"
#include "tasks/pg/naps.hpp"
#include "tasks/pg/rows.hpp"
#include "tasks/pg/shared_service.hpp"
#include "tasks/task_json.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>

namespace quiesce::tasks::pg {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

void shared_service::start(lifecycle::executor_source strands, lifecycle::task_group& group) {
  group.spawn(db_.get_executor(), claimer(), [](std::exception_ptr e) {
    if (e) log::error("the claimer stopped", {{"error", log::describe(e)}});
  });
  workers_.start(strands, group);
}

void shared_service::start_background(lifecycle::task_group& background) {
  auto report = [](const char* what) {
    return [what](std::exception_ptr e) {
      if (e) log::error("stopped", {{"what", what}, {"error", log::describe(e)}});
    };
  };
  background.spawn(db_.get_executor(), heartbeat(), report("heartbeat"));
  background.spawn(db_.get_executor(), listener(), report("listener"));
  background.spawn(db_.get_executor(), scheduler(), report("scheduler"));
  background.spawn(db_.get_executor(), follow_events(), report("the event follower"));
}

void shared_service::wake_claimer() {
  claim_wanted_ = true;
  claimer_wake_.notify_all();
}

void shared_service::stop_admission() {
  accepting_ = false;
  // Peers are counted afresh: the claimer stops once it knows another replica can take over.
  asio::post(db_, [this] {
    peers_known_ = false;
    beat_soon();
    claimer_wake_.notify_all();
  });
}

void shared_service::wake_follower() {
  events_wanted_ = true;
  follower_wake_.notify_all();
}

void shared_service::beat_soon() {
  beat_soon_ = true;
  beat_wake_.notify_all();
}

bool shared_service::claiming_done() const {
  // What this replica is still admitting was accepted: with no peer, it runs here too.
  if (accepting_ || admitting_ > 0) return false;
  // Alone, the queue is done only if the last claim found it empty and nothing woke the claimer
  // since: an admission committed while that claim ran is not in its snapshot, and its wake is
  // the only sign of it (CI saw a lone replica exit with five of six tasks still queued).
  return peers_known_ && (live_peers_ > 0 || (queue_seen_empty_ && !claim_wanted_));
}

asio::awaitable<void> shared_service::claimer() {
  // By priority, then in queue order (the index quiesce_tasks_runnable); River's and Oban's
  // shape: lock what we take, skip what others are taking.
  static const std::string claim = R"sql(
WITH next AS MATERIALIZED (
  SELECT id FROM quiesce_tasks WHERE status = 'queued'
  ORDER BY priority, queue_order LIMIT $2 FOR UPDATE SKIP LOCKED)
UPDATE quiesce_tasks t
SET status = 'running', owner = $1, attempt = t.attempt + 1, started_us = $4, progress = 0,
    lease_until = now() + $3 * interval '1 millisecond', message = 'Task ' || t.id || ' running'
FROM next WHERE t.id = next.id
RETURNING )sql" + task_columns("t.") +
                                   ", t.queue_order";
  retry_backoff backoff;
  try {
    for (;;) {
      std::size_t free = idle_workers_.size();
      if (claiming_done()) break;
      if (!claim_wanted_ || free == 0 || (!accepting_ && !peers_known_)) {
        co_await nap(claimer_wake_, std::nullopt);
        continue;
      }
      claim_wanted_ = false;
      std::vector<std::pair<std::int64_t, task_record>> got;
      bool failed = false;
      try {
        auto r = co_await pool_.exec(claim, replica_, std::to_string(free), ms(settings_.lease),
                                     micros(std::chrono::system_clock::now()));
        for (int i = 0; i < r.rows(); ++i)
          got.emplace_back(r.integer(i, task_column_count), read_task(r, i));
        backoff.succeeded();
      } catch (const db_error&) {
        failed = true;  // the pool told the health of it
      }
      if (failed) {
        claim_wanted_ = true;
        co_await nap(claimer_wake_, backoff.failed());
        continue;
      }
      queue_seen_empty_ = got.size() < free;
      if (got.size() == free) claim_wanted_ = true;  // there may be more
      std::sort(got.begin(), got.end(), [](auto& a, auto& b) { return a.first < b.first; });
      for (auto& [order, t] : got) hand_out(std::move(t));
    }
  } catch (const boost::system::system_error&) {
    // Cancelled: the deadline or a second signal.
  } catch (const std::exception& e) {
    log::error("the claimer stopped", {{"error", e.what()}});
  }
  claiming_ended_ = true;
  end_claims();
  changed_.notify_all();
  log::info("claiming stopped", {{"live_peers", live_peers_}, {"running", running_.size()}});
}

asio::awaitable<void> shared_service::claim(lifecycle::abort_scope::ticket abort,
                                            std::optional<task_record>& claimed) {
  claimed = co_await on_db(claim_here(std::move(abort)));
}

asio::awaitable<std::optional<task_record>> shared_service::claim_here(
    lifecycle::abort_scope::ticket abort) {
  if (claiming_ended_) co_return std::nullopt;
  auto w = std::make_shared<idle_worker>();
  w->abort = std::move(abort);
  idle_workers_.push_back(w);
  wake_claimer();  // one more free worker
  try {
    co_await w->answer.wait_until([&] { return w->answered; });
  } catch (const boost::system::system_error&) {
    // Cancelled (the deadline): a task handed to it in the same moment goes back to the queue.
    std::erase(idle_workers_, w);
    if (w->task) give_back(std::move(*w->task));
    throw;
  }
  co_return std::move(w->task);
}

// On db_: the task was claimed for the worker that waited longest; its attempt runs on that
// worker's strand.
void shared_service::hand_out(task_record t) {
  if (idle_workers_.empty()) return give_back(std::move(t));  // its worker was cancelled
  auto w = std::move(idle_workers_.front());
  idle_workers_.pop_front();
  track(t).abort = w->abort;
  observed(t);
  w->task = std::move(t);
  w->answered = true;
  w->answer.notify_all();
}

void shared_service::end_claims() {
  for (auto& w : idle_workers_) {
    w->answered = true;
    w->answer.notify_all();
  }
  idle_workers_.clear();
}

// On db_: the run's handle, made once (a task given back may have been handed out already: its
// worker was cancelled as it was answered).
shared_service::run_handle& shared_service::track(const task_record& t) {
  auto& h = running_[t.id];
  if (!h) {
    h = std::make_shared<run_handle>();
    h->record = t;
  }
  return *h;
}

void shared_service::give_back(task_record t) {
  track(t);
  asio::co_spawn(db_, write_end(std::move(t), std::nullopt),
                 lifecycle::log_escaped{"a claimed task's return"});
}

void shared_service::report(const std::string& task_id, double progress) {
  asio::post(db_, [this, task_id, progress] { note_progress(task_id, progress, std::nullopt); });
}

void shared_service::checkpoint(const std::string& task_id, boost::json::value checkpoint,
                                std::optional<double> progress) {
  asio::post(db_, [this, task_id, progress, text = boost::json::serialize(checkpoint)]() mutable {
    note_progress(task_id, progress, std::move(text));
  });
}

// The end is stored from the store's thread; the worker waits for it.
asio::awaitable<void> shared_service::finish(task_record t, task_status status) {
  co_await asio::co_spawn(db_, write_end(std::move(t), status), asio::use_awaitable);
}

asio::awaitable<void> shared_service::put_back(task_record t) {
  co_await asio::co_spawn(db_, write_end(std::move(t), std::nullopt), asio::use_awaitable);
}

void shared_service::note_progress(const std::string& id, std::optional<double> progress,
                                   std::optional<std::string> checkpoint) {
  auto it = running_.find(id);
  if (it == running_.end() || it->second->ended) return;
  if (progress) it->second->progress = progress;
  if (checkpoint) it->second->checkpoint = std::move(checkpoint);
  if (!it->second->writing)
    asio::co_spawn(db_, write_progress(id), lifecycle::log_escaped{"progress writer"});
}

// One progress write in flight per task; a newer report replaces one not yet written. A checkpoint
// alone changes no event (the trigger numbers status, progress and attempt changes).
asio::awaitable<void> shared_service::write_progress(std::string id) {
  static const std::string sql =
      "UPDATE quiesce_tasks SET progress = COALESCE($4::double precision, progress), "
      "checkpoint = COALESCE($5, checkpoint) "
      "WHERE id = $1 AND owner = $2 AND attempt = $3 AND status = 'running'";
  auto h = running_.at(id);
  h->writing = true;
  while ((h->progress || h->checkpoint) && !h->ended) {
    auto p = std::exchange(h->progress, std::nullopt);
    // Named, not temporaries of the co_await: GCC 12 destroyed a conditional's temporary twice
    // when the statement threw.
    std::vector<param> args{id, replica_, std::to_string(h->record.attempt)};
    args.push_back(p ? param(number(*p)) : param());
    args.push_back(std::exchange(h->checkpoint, std::nullopt));
    try {
      auto r = co_await pool_.exec_with(sql, std::move(args));
      if (r.affected() == 0) {
        stop_run(id, true);
        break;
      }
      if (p) h->record.progress = *p;
    } catch (const db_error&) {
      // The task goes on; this step is not shown. Its end is retried until stored.
    }
  }
  h->writing = false;
  h->progress_written.notify_all();
}

// Stores the end of a run (or, stopped by the deadline, puts it back in the queue), fenced: a
// replica that lost the lease finds out here and leaves the rescuer's record alone.
asio::awaitable<void> shared_service::write_end(task_record t, std::optional<task_status> status) {
  auto h = running_.at(t.id);
  h->ended = true;
  co_await h->progress_written.wait_until([&] { return !h->writing; });  // its last step first
  if (!status) {
    t.requeue("stopped by its replica's shutdown deadline; another replica runs it");
  } else if (!h->lease_lost) {
    t.move_to(*status);
    t.progress = std::max(t.progress, h->record.progress);
    if (*status == task_status::scheduled) t.progress = 0.0;  // its next attempt starts again
  }
  bool stored = co_await store_end(t, !status, *h);
  if (stored && t.status == task_status::scheduled) co_await tell_scheduled(*t.run_at);
  running_.erase(t.id);
  changed_.notify_all();
  wake_claimer();
  if (h->lease_lost) {
    log::warn("lease lost: another replica owns this task now; this run's outcome is discarded",
              {{"task_id", t.id}, {"attempt", t.attempt}});
    co_return;
  }
  if (!stored) {
    log::warn("a task's end could not be stored: its lease will run out and a peer reruns it",
              {{"task_id", t.id}, {"attempt", t.attempt}});
    co_return;
  }
  observed(t);
  auto lvl = t.status == task_status::succeeded ? log::level::debug : log::level::info;
  if (log::enabled(lvl))
    log::write(lvl, status ? "task ended" : "task requeued",
               {{"task_id", t.id},
                {"status", to_string(t.status)},
                {"attempt", t.attempt},
                {"error", t.error ? boost::json::value(*t.error) : nullptr}});
}

// The fenced write of write_end(), retried until stored, the lease is lost, or this replica must
// stop (the lease then runs out and a peer reruns the task: at least once). Whether it stored.
asio::awaitable<bool> shared_service::store_end(const task_record& t, bool requeue, run_handle& h) {
  static const std::string end_sql =
      "UPDATE quiesce_tasks SET status = $4, progress = $5, message = $6, finished_us = $7, "
      "result = $8, error = $9, checkpoint = $10, output = $11, run_at_us = $12, errors = $13, "
      "owner = NULL, lease_until = NULL "
      "WHERE id = $1 AND owner = $2 AND attempt = $3 AND status = 'running'";
  static const std::string requeue_sql =
      "WITH back AS (UPDATE quiesce_tasks SET status = 'queued', owner = NULL, lease_until = NULL, "
      "started_us = NULL, progress = 0, message = $4, checkpoint = $5, output = $6 "
      "WHERE id = $1 AND owner = $2 AND attempt = $3 AND status = 'running' RETURNING id) "
      "SELECT pg_notify('quiesce_work', '') FROM back";
  std::vector<param> args;
  args.emplace_back(t.id);
  args.emplace_back(replica_);
  args.emplace_back(std::to_string(t.attempt));
  if (requeue) {
    args.emplace_back(t.message);
  } else {
    args.emplace_back(std::string(to_string(t.status)));
    args.emplace_back(number(t.progress));
    args.emplace_back(t.message);
    args.push_back(micros(t.finished_at));
    args.push_back(t.result.is_null() ? param() : param(boost::json::serialize(t.result)));
    args.push_back(t.error);
  }
  args.push_back(t.checkpoint.is_null() ? param() : param(boost::json::serialize(t.checkpoint)));
  args.push_back(t.output);
  if (!requeue) {
    args.push_back(micros(t.run_at));
    args.emplace_back(boost::json::serialize(errors_json(t.errors)));
  }
  retry_backoff backoff;
  while (!h.lease_lost) {
    try {
      auto r = co_await pool_.exec_with(requeue ? requeue_sql : end_sql, args);
      bool stored = requeue ? r.rows() == 1 : r.affected() == 1;
      if (!stored) h.lease_lost = true;
      co_return stored;
    } catch (const boost::system::system_error&) {
      co_return false;  // cancelled while storing: this replica must stop now
    } catch (const db_error& e) {
      if (!e.lost) {
        log::error("a task's end was refused by the database",
                   {{"task_id", t.id}, {"error", e.what()}});
        co_return false;
      }
    }
    try {
      co_await back_off(backoff.failed());
    } catch (const boost::system::system_error&) {
      co_return false;  // cancelled while waiting to retry: this replica must stop now
    }
  }
  co_return false;
}

// On db_: a DELETE from any replica, or a lease found lost.
void shared_service::stop_run(const std::string& id, bool lost) {
  auto it = running_.find(id);
  if (it == running_.end()) return;
  auto h = it->second;
  if (lost) h->lease_lost = true;
  h->abort.request_abort();
}

asio::awaitable<void> shared_service::wait_idle() {
  auto idle = [this]() -> asio::awaitable<void> {
    co_await changed_.wait_until(
        [this] { return claiming_ended_ && running_.empty() && admitting_ == 0; });
    // Gone from the replicas table: peers stop counting on us at once. Our streams then get
    // every event written so far, ours among them, before they are closed.
    try {
      co_await pool_.exec("DELETE FROM quiesce_replicas WHERE id = $1", replica_);
      auto r = co_await pool_.exec("SELECT last_seq FROM quiesce_event_counter");
      bus_.expect(static_cast<std::uint64_t>(r.integer(0, 0)));
      wake_follower();
    } catch (const db_error& e) {
      log::warn("could not leave the replicas table", {{"error", e.what()}});
    }
  };
  co_await on_db(idle());
  // Bounded: a database that goes away now must not hold the drain until its deadline.
  asio::steady_timer limit(co_await asio::this_coro::executor, settings_.timeout * 2);
  boost::system::error_code ec;
  co_await (bus_.flush() || limit.async_wait(asio::redirect_error(asio::use_awaitable, ec)));
}

asio::awaitable<void> shared_service::interrupt_queued() {
  // The queue is the service's: what this replica did not start stays for the others (or for
  // the next replica to start); tasks stopped by the deadline were put back by their runs.
  co_await bus_.flush();
}

}  // namespace quiesce::tasks::pg
