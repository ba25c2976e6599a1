// task_service as the workers' engine (task_engine.hpp): the local queue's claims, progress and
// ends. The workers themselves are in worker_pool.cpp, shared with every store.
#include "lifecycle/cancelled.hpp"
#include "support/log.hpp"
#include "tasks/task_json.hpp"
#include "tasks/task_service.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/system_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace quiesce::tasks {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

namespace {
// What finish() and put_back() return: they store and announce at once, in plain functions, so
// that their locals stay on the stack instead of in a coroutine frame of their own per task.
asio::awaitable<void> done() { co_return; }
}  // namespace

void task_service::start(lifecycle::executor_source strands, lifecycle::task_group& group) {
  workers_.start(strands, group);
  group.spawn(strands(), promote_scheduled());
}

// One timer, for the earliest scheduled task; an earlier one arriving wakes it.
asio::awaitable<void> task_service::promote_scheduled() {
  asio::system_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    auto key = schedule_changed_.prepare_wait();
    std::optional<run_queue::time_point> next;
    {
      std::lock_guard lock(mutex_);
      if (!accepting_) co_return;  // what is scheduled waits in the store for the next process
      next = queue_.next_due();
    }
    if (next && *next <= std::chrono::system_clock::now()) {
      promote_due();
      continue;
    }
    if (!next) {
      co_await schedule_changed_.wait(key);
      continue;
    }
    timer.expires_at(*next);
    boost::system::error_code ec;
    co_await (schedule_changed_.wait(key) ||
              timer.async_wait(asio::redirect_error(asio::use_awaitable, ec)));
    co_await lifecycle::throw_if_cancelled();
  }
}

void task_service::promote_due() {
  std::size_t promoted = 0;
  {
    std::lock_guard lock(mutex_);
    for (auto& id : queue_.promote_due(std::chrono::system_clock::now())) {
      auto t = store_.get(id);
      t->move_to(task_status::queued);
      store_.update(*t);
      publish(*t);
      ++promoted;
    }
  }
  for (std::size_t i = 0; i < promoted; ++i) work_available_.notify_one();
}

// Not a coroutine: the wait is the claim.
asio::awaitable<void> task_service::claim(lifecycle::abort_scope::ticket abort,
                                          std::optional<task_record>& claimed) {
  return work_available_.wait_until([this, abort = std::move(abort), &claimed] {
    bool finished = false;
    claimed = take_next(abort, finished);  // takes the task it finds
    return claimed || finished;
  });
}

std::optional<task_record> task_service::take_next(const lifecycle::abort_scope::ticket& abort,
                                                   bool& finished) {
  std::unique_lock lock(mutex_);
  auto next = queue_.pop();
  if (!next) {
    finished = !accepting_ && storing_.empty();
    return std::nullopt;
  }
  auto id = std::move(*next);
  // The node's key outlives the lock: only this worker erases it, at the task's end.
  const std::string& taken = running_.emplace(std::move(id), abort).first->first;
  // The record changes after the lock: the task is in running_ until its end is published, so
  // a drain waits for it, and only this worker changes or announces it until then. (A DELETE
  // meanwhile finds it in running_ and aborts it before it starts.)
  lock.unlock();
  auto t = store_.get(taken);
  t->move_to(task_status::running);
  store_.update(*t);
  publish(*t);
  return t;
}

void task_service::report(const std::string& task_id, double progress) {
  auto r = store_.get(task_id);
  r->progress = progress;
  store_.update(*r);
  publish_progress(*r);
}

// An event like progress's: the journal stores a task's state with its events, so the checkpoint
// is durable once that event is stored.
void task_service::checkpoint(const std::string& task_id, boost::json::value checkpoint,
                              std::optional<double> progress) {
  auto r = store_.get(task_id);
  r->checkpoint = std::move(checkpoint);
  if (progress) r->progress = *progress;
  store_.update(*r);
  publish_progress(*r);
}

asio::awaitable<void> task_service::put_back(task_record t) {
  requeue(std::move(t));
  return done();
}

void task_service::requeue(task_record t) {
  t.requeue("stopped by the shutdown deadline or a second signal; it runs again after a restart");
  // Under the lock, unlike end(): `queued` is not final, so a DELETE that found the task in
  // running_ with that status would wait for an end that never comes.
  {
    std::lock_guard lock(mutex_);
    running_.erase(t.id);
    store_.update(t);
    publish_requeued(t);
  }
  log::info("task requeued", {{"task_id", t.id}, {"attempt", t.attempt}});
  task_ended_.notify_all();
}

asio::awaitable<void> task_service::finish(task_record t, task_status status) {
  end(std::move(t), status);
  return done();
}

void task_service::end(task_record t, task_status status) {
  // Progress reports changed the stored copy; keep them (success sets 1.0), then move to the
  // final status.
  if (status != task_status::succeeded)
    if (auto stored = store_.get(t.id)) t.progress = stored->progress;
  t.move_to(status);
  if (status == task_status::scheduled) t.progress = 0.0;  // its next attempt starts again
  // Stored and announced before the task leaves running_, so a drain that finds running_
  // empty finds its end published; the lock, which every admission takes, is held for the
  // erase alone.
  store_.update(t);
  publish(t, open_event_text(t), {});
  {
    std::lock_guard lock(mutex_);
    running_.erase(t.id);
    if (status == task_status::scheduled) queue_.schedule(t.id, t.priority, *t.run_at);
  }
  if (status == task_status::scheduled) schedule_changed_.notify_all();
  // Every end at debug (the rollout test's ground truth); the unhappy ones at info.
  auto lvl = status == task_status::succeeded ? log::level::debug : log::level::info;
  if (log::enabled(lvl))
    log::write(
        lvl, status == task_status::scheduled ? "task attempt failed; retried later" : "task ended",
        {{"task_id", t.id},
         {"status", to_string(status)},
         {"error", t.error ? boost::json::value(*t.error) : nullptr}});
  task_ended_.notify_all();
}

}  // namespace quiesce::tasks
