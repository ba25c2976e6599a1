// The queue in this process (memory and sqlite stores): admission, the bounded queue and the
// workers that run tasks. Records live in the store, transitions go out on the bus.
//
// Locking: mutex_ guards the queue, the storing and running sets and the admission flag. A change
// to them and the event announcing it happen under it together, so a drain that finds the queue
// empty finds every announcement published. Two exceptions. An admission's `queued` event goes
// out after the lock is released, because without a journal publish() calls admitted(), which
// takes it; until then the task is in storing_, which the drain counts. A running task's record
// changes and events (`running`, progress, its end) happen outside the lock: it is in running_
// from its take until its end is stored and published, and only its worker changes it
// meanwhile (a requeue at the deadline stays under it: see requeue()). The lock is an
// adaptive_mutex: admissions and workers on every network thread take it, so it is held for the
// sets alone.
#pragma once

#include "lifecycle/abort_scope.hpp"
#include "lifecycle/event_count.hpp"
#include "lifecycle/task_group.hpp"
#include "support/adaptive_mutex.hpp"
#include "tasks/event_bus.hpp"
#include "tasks/run_queue.hpp"
#include "tasks/service.hpp"
#include "tasks/task_engine.hpp"
#include "tasks/task_kind.hpp"
#include "tasks/task_observer.hpp"
#include "tasks/task_store.hpp"
#include "tasks/worker_pool.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

namespace quiesce::tasks {

// Filled from the configuration (app/settings.cpp; every default is in app/config.hpp).
struct service_settings {
  std::size_t workers{};
  std::size_t queue_capacity{};
  // With a durable store, a task stopped by the deadline or a second signal goes back to
  // `queued` for the next process instead of ending `interrupted`.
  bool requeue_on_shutdown{};
};

class task_service final : public service, private task_engine {
 public:
  task_service(service_settings settings, kind_registry kinds, task_store& store, event_bus& bus,
               boost::asio::thread_pool& cpu);

  // Checks kind and parameters (throws bad_parameter, field "kind" for an unknown kind),
  // then admits the task, unless the queue is full or admission is closed. A created task
  // joins the queue once its `queued` event is stored: await wait_stored() before answering.
  admission enqueue(std::string_view kind, const boost::json::object& params,
                    std::optional<std::string> idempotency_key, const job_options& options = {});
  // Whether task `id` (just created) was stored and queued; false: it was not, and is gone.
  boost::asio::awaitable<bool> wait_stored(std::string id);
  // At start-up, before start(): what an earlier process left unfinished runs again, in the
  // order it was created; a task that was running is requeued (its process died).
  void recover(const std::vector<task_record>& unfinished);
  std::optional<task_record> peek(std::string_view id) const;
  // Cancels a queued task at once, a running one through its worker; completes when it ended.
  boost::asio::awaitable<std::pair<cancel_outcome, std::optional<task_record>>> cancel(
      std::string id) override;
  boost::asio::awaitable<std::pair<retry_outcome, std::optional<task_record>>> retry(
      std::string id) override;
  task_counts known_counts() const override;
  const kind_registry& kinds() const override { return kinds_; }
  void observe(task_observer& o) override { observer_ = &o; }
  // Whether the journal's last write succeeded (none: always).
  void watch_store(std::function<bool()> healthy) { healthy_ = std::move(healthy); }

  // The seam, over the calls above.
  boost::asio::awaitable<admission> admit(std::string kind, boost::json::object params,
                                          std::optional<std::string> idempotency_key,
                                          job_options options) override;
  boost::asio::awaitable<std::optional<task_record>> find(std::string id) override;
  boost::asio::awaitable<task_counts> read_counts() override;
  bool store_healthy() const override { return !healthy_ || healthy_(); }

  // Lifecycle: spawn the workers into `group`; close admission; wait for an empty queue, no
  // running task and every event delivered; mark what never started `interrupted` (or, with
  // requeue_on_shutdown, tell its subscribers it is requeued) and wait for those events.
  void start(lifecycle::executor_source strands, lifecycle::task_group& group) override;
  void stop_admission() override;
  bool accepting() const override;
  boost::asio::awaitable<void> wait_idle() override;
  boost::asio::awaitable<void> interrupt_queued() override;

 private:
  // The engine the workers run through (task_engine.hpp); worker_pool.cpp's other half.
  boost::asio::awaitable<void> claim(lifecycle::abort_scope::ticket abort,
                                     std::optional<task_record>& claimed) override;
  void report(const std::string& task_id, double progress) override;
  void checkpoint(const std::string& task_id, boost::json::value checkpoint,
                  std::optional<double> progress) override;
  boost::asio::awaitable<void> finish(task_record t, task_status status) override;
  boost::asio::awaitable<void> put_back(task_record t) override;
  void end(task_record t, task_status status);  // finish()'s work
  // Scheduled tasks become queued when due, each announced, until admission closes.
  boost::asio::awaitable<void> promote_scheduled();
  void promote_due();
  void requeue(task_record t);  // put_back()'s, under the lock unlike end()
  bool keeps_stopped_work() const override { return settings_.requeue_on_shutdown; }
  // The next queued task, now running here with `abort` as its stop; none: `finished` says
  // whether one can still come.
  std::optional<task_record> take_next(const lifecycle::abort_scope::ticket& abort, bool& finished);

  // A status change: the observer hears of it, then the bus. Progress goes to the bus only.
  void publish(const task_record& t, std::function<void(bool)> on_stored = {});
  void publish(const task_record& t, std::string event_text, std::function<void(bool)> on_stored);
  void publish_progress(const task_record& t);
  void publish_requeued(const task_record& t);  // a `task` event with "requeued": true
  void admitted(const std::string& id, bool stored);

  const service_settings settings_;
  const kind_registry kinds_;
  task_store& store_;
  event_bus& bus_;
  task_observer* observer_ = nullptr;
  std::function<bool()> healthy_;
  boost::asio::thread_pool& cpu_;

  mutable support::adaptive_mutex mutex_;
  run_queue queue_;
  // An admission waiting for the journal; its POST waits on `answered` alone (one wake-up per
  // answer, not one per commit for every POST in flight).
  struct storing {
    lifecycle::event_count answered;
    std::optional<bool> stored;  // under mutex_
    int priority = default_priority;
    std::optional<run_queue::time_point> run_at;  // scheduled: when it becomes runnable
  };
  std::unordered_map<std::string, std::shared_ptr<storing>> storing_;
  // A running task's own cancellation, on its worker's strand: DELETE aborts it there.
  std::unordered_map<std::string, lifecycle::abort_scope::ticket> running_;
  bool accepting_ = true;
  lifecycle::event_count work_available_;    // the queue grew, or admission closed
  lifecycle::event_count schedule_changed_;  // a task was scheduled, or admission closed
  lifecycle::event_count task_ended_;        // a task reached a final status
  worker_pool workers_{settings_.workers, kinds_, *this, cpu_};
};

}  // namespace quiesce::tasks
