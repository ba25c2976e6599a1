// The queue and the task records in PostgreSQL, shared by every replica on one database: any
// replica admits, answers for and cancels any task; each claims queued tasks for its own workers,
// holds a lease on what it runs and rescues what a dead replica left. Task events are written by
// the database itself (schema.cpp) and every replica reads them back for its own streams.
//
// Ownership: everything below runs on one thread of its own (db_), so the state is touched there
// only and needs no lock; the network threads reach it by co_spawn onto db_ and the tasks
// themselves run on the network threads. The one lock guards the counts last seen, which the
// admin port reads without waiting.
#pragma once

#include "lifecycle/abort_scope.hpp"
#include "lifecycle/event_count.hpp"
#include "tasks/event_bus.hpp"
#include "tasks/pg/pool.hpp"
#include "tasks/service.hpp"
#include "tasks/task_engine.hpp"
#include "tasks/worker_pool.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace quiesce::tasks::pg {

// Filled from the configuration (app/settings.cpp; every default is in app/config.hpp).
struct shared_settings {
  std::string conninfo;
  std::size_t pool_size{};
  std::chrono::milliseconds timeout{};  // a statement or a connect past it: unavailable
  std::size_t workers{};
  std::size_t queue_capacity{};  // queued tasks in the whole service
  std::size_t task_retention{};
  std::size_t event_retention{};  // events kept in the database for ?since= replay
  std::chrono::milliseconds lease{};
  std::string pod;  // shown in quiesce_replicas
};

class shared_service final : public service, private task_engine {
 public:
  shared_service(shared_settings s, kind_registry kinds, event_bus& bus,
                 boost::asio::thread_pool& cpu);
  ~shared_service() override;
  shared_service(const shared_service&) = delete;
  shared_service& operator=(const shared_service&) = delete;

  // Starts the store's thread. The schema is there already (open_database(), which also gave
  // the bus its epoch, last seq and window).
  void open();
  const std::string& replica() const { return replica_; }

  const kind_registry& kinds() const override { return kinds_; }
  void observe(task_observer& o) override { observer_ = &o; }
  boost::asio::awaitable<admission> admit(std::string kind, boost::json::object params,
                                          std::optional<std::string> idempotency_key,
                                          job_options options) override;
  boost::asio::awaitable<std::optional<task_record>> find(std::string id) override;
  boost::asio::awaitable<std::pair<retry_outcome, std::optional<task_record>>> retry(
      std::string id) override;
  boost::asio::awaitable<std::pair<cancel_outcome, std::optional<task_record>>> cancel(
      std::string id) override;
  boost::asio::awaitable<task_counts> read_counts() override;
  task_counts known_counts() const override;
  bool accepting() const override { return accepting_; }
  bool store_healthy() const override { return healthy_seen_; }

  // Spawns the claimer and the workers into `group` and the heartbeat and the listener into
  // `background`, which must stay until the end (leases are renewed while anything runs).
  void start(lifecycle::executor_source strands, lifecycle::task_group& group) override;
  void start_background(lifecycle::task_group& background);
  void stop_admission() override;
  boost::asio::awaitable<void> wait_idle() override;
  boost::asio::awaitable<void> interrupt_queued() override;

 private:
  // A task this replica runs: what its writes are fenced with, and how its run is stopped.
  struct run_handle {
    task_record record;  // as last stored
    std::chrono::steady_clock::time_point claimed = std::chrono::steady_clock::now();
    lifecycle::abort_scope::ticket abort;  // its worker's: a DELETE, or the lease was lost
    std::atomic<bool> lease_lost = false;
    std::optional<double> progress;           // reported, not yet written
    std::optional<std::string> checkpoint;    // stored by the attempt, not yet written (JSON)
    bool writing = false;                     // a progress write is in flight
    bool ended = false;                       // the final write began: no progress event after it
    lifecycle::event_count progress_written;  // `writing` became false
  };
  // A worker waiting for a claim (claim_here), answered by the claimer.
  struct idle_worker {
    lifecycle::abort_scope::ticket abort;
    std::optional<task_record> task;  // none once answered: claiming has ended
    bool answered = false;
    lifecycle::event_count answer;  // its own: an answer wakes this worker, not every idle one
  };
  // DELETEs waiting for a running task's end to come back through the event stream.
  struct awaited_end {
    std::size_t waiting = 0;
    bool seen = false;
  };
  struct pending_admission {
    task_record task;
    std::optional<admission> answer;  // none after the wake-up: the store was unreachable
    std::string failure;
    bool settled = false;  // answer or failure set
  };

  // shared_service.cpp: admission, reads, cancel.
  boost::asio::awaitable<admission> admit_here(std::shared_ptr<pending_admission> p);
  using admission_batch = std::vector<std::shared_ptr<pending_admission>>;
  boost::asio::awaitable<void> write_admissions();  // group commit, one statement each:
  boost::asio::awaitable<std::int64_t> insert_admissions(const admission_batch& batch);
  boost::asio::awaitable<std::unordered_map<std::string, task_record>> read_replays(
      const admission_batch& batch);
  static void answer_the_rest(const admission_batch& batch,
                              const std::unordered_map<std::string, task_record>& by_key,
                              std::int64_t room);
  static std::string admission_rows(const admission_batch& batch);
  boost::asio::awaitable<std::pair<cancel_outcome, std::optional<task_record>>> cancel_here(
      std::string id);
  boost::asio::awaitable<std::optional<task_record>> read_now(std::string id);
  void ended(const std::string& id);
  // Runs `op` on the store's thread and resumes the caller on its own executor. A lost
  // connection is store_unavailable: the route answers 503, not 500.
  template <typename T>
  boost::asio::awaitable<T> on_db(boost::asio::awaitable<T> op) {
    try {
      co_return co_await boost::asio::co_spawn(db_, std::move(op), boost::asio::use_awaitable);
    } catch (const db_error& e) {
      if (!e.lost) throw;
      throw store_unavailable(e.what());
    }
  }

  // shared_runner.cpp: the workers' engine (task_engine.hpp), leases, notifications.
  boost::asio::awaitable<void> claim(lifecycle::abort_scope::ticket abort,
                                     std::optional<task_record>& claimed) override;
  void report(const std::string& task_id, double progress) override;
  void checkpoint(const std::string& task_id, boost::json::value checkpoint,
                  std::optional<double> progress) override;
  boost::asio::awaitable<void> finish(task_record t, task_status status) override;
  boost::asio::awaitable<void> put_back(task_record t) override;
  // What a replica stopped by its deadline leaves, another replica runs.
  bool keeps_stopped_work() const override { return true; }
  boost::asio::awaitable<std::optional<task_record>> claim_here(
      lifecycle::abort_scope::ticket abort);
  boost::asio::awaitable<void> claimer();
  bool claiming_done() const;
  void hand_out(task_record t);   // on db_: to the longest idle worker
  void end_claims();              // on db_: every idle worker is told no task will come
  void give_back(task_record t);  // on db_: claimed, but no worker is left to run it
  run_handle& track(const task_record& t);
  // On db_: progress or a checkpoint to write (a newer one replaces one not yet written).
  void note_progress(const std::string& id, std::optional<double> progress,
                     std::optional<std::string> checkpoint);
  boost::asio::awaitable<void> write_progress(std::string id);
  // Stores the end (`status`) or, with none, puts the task back in the queue.
  boost::asio::awaitable<void> write_end(task_record t, std::optional<task_status> status);
  boost::asio::awaitable<bool> store_end(const task_record& t, bool requeue, run_handle& h);
  boost::asio::awaitable<void> heartbeat();
  boost::asio::awaitable<void> beat();  // shared_heartbeat.cpp, one statement each:
  boost::asio::awaitable<void> say_alive(bool draining);
  boost::asio::awaitable<void> renew_leases();
  boost::asio::awaitable<void> rescue_expired();
  boost::asio::awaitable<void> count_peers(bool draining);
  boost::asio::awaitable<void> count_tasks();
  boost::asio::awaitable<void> prune();
  boost::asio::awaitable<void> listener();
  // shared_schedule.cpp: scheduled tasks become queued when due; the retry route.
  boost::asio::awaitable<void> scheduler();
  void note_scheduled(std::string_view payload);
  void reread_schedule();
  boost::asio::awaitable<void> tell_scheduled(task_record::time_point at);
  boost::asio::awaitable<std::pair<retry_outcome, std::optional<task_record>>> retry_here(
      std::string id);
  boost::asio::awaitable<void> follow_events();
  void stop_run(const std::string& id, bool lost);  // on db_
  void observed(const task_record& t);
  void wake_claimer();
  void wake_follower();
  void beat_soon();

  // Health: every statement's outcome, from the pool and the listener; a change is logged once.
  void health(bool ok, pool::clock::time_point began, const std::string& why);

  const shared_settings settings_;
  const kind_registry kinds_;
  const std::string replica_;
  event_bus& bus_;
  boost::asio::thread_pool& cpu_;
  task_observer* observer_ = nullptr;

  std::atomic<bool> accepting_ = true;
  std::atomic<bool> healthy_seen_ = true;

  // Only on db_.
  boost::asio::io_context db_{1};
  pool pool_;
  bool healthy_ = true;
  pool::clock::time_point health_changed_{};
  std::deque<std::shared_ptr<pending_admission>> admissions_;
  bool writing_admissions_ = false;
  lifecycle::event_count admissions_settled_;
  std::size_t admitting_ = 0;  // admissions not yet answered
  std::unordered_map<std::string, std::shared_ptr<run_handle>> running_;
  std::deque<std::shared_ptr<idle_worker>> idle_workers_;
  std::unordered_map<std::string, awaited_end> awaited_ends_;
  lifecycle::event_count ends_seen_;
  bool claim_wanted_ = true;  // a notification, a free worker or a rescue since the last claim
  bool queue_seen_empty_ = false;
  bool peers_known_ = false;  // a heartbeat since admission closed told how many peers live
  std::size_t live_peers_ = 0;
  bool claiming_ended_ = false;
  lifecycle::event_count claimer_wake_;
  lifecycle::event_count beat_wake_;
  bool beat_soon_ = false;
  bool schedule_unknown_ = true;             // a reconnect since the earliest run_at was read
  std::optional<std::int64_t> next_due_us_;  // the earliest run_at known (microseconds)
  lifecycle::event_count schedule_wake_;
  bool events_wanted_ = true;  // a notification or a reconnect since the last read
  lifecycle::event_count follower_wake_;
  lifecycle::event_count changed_;  // running_, admitting_ or claiming_ended_ changed

  worker_pool workers_{settings_.workers, kinds_, *this, cpu_};

  mutable std::mutex counts_mutex_;
  task_counts counts_;  // the service's, as of the last heartbeat

  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

}  // namespace quiesce::tasks::pg
