// The workers: each a coroutine on its own strand that takes the next queued task and runs it,
// until admission is closed and the queue is empty (a drain never drops accepted work).
#include "tasks/task_service.hpp"

#include "lifecycle/log.hpp"
#include "tasks/task_json.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace quiesce::tasks {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

void task_service::start(lifecycle::strand_source strands, lifecycle::task_group& group) {
  for (std::size_t i = 0; i < settings_.workers; ++i) {
    group.spawn(strands(), worker(), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);  // a bug: let it reach main and be seen
    });
  }
}

task_service::next_task task_service::take_next(lifecycle::abort_scope& scope) {
  std::unique_lock lock(mutex_);
  if (queue_.empty()) return {std::nullopt, {}, !accepting_ && storing_.empty()};
  auto id = std::move(queue_.front());
  queue_.pop_front();
  auto abort = scope.begin();
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
  return {std::move(t), std::move(abort), false};
}

// One coroutine per worker for its whole life: a task is aborted through the scope, not through
// a coroutine of its own (lifecycle/abort_scope.hpp says why).
asio::awaitable<void> task_service::worker() {
  auto scope = std::make_shared<lifecycle::abort_scope>(co_await asio::this_coro::executor);
  co_await scope->run(work(*scope));
}

asio::awaitable<void> task_service::work(lifecycle::abort_scope& scope) {
  for (;;) {
    next_task next;
    try {
      co_await work_available_.wait_until([&] {
        next = take_next(scope);  // takes the task it finds
        return next.task || next.finished;
      });
    } catch (const boost::system::system_error&) {
      co_return;  // terminal cancellation while idle
    }
    if (!next.task) co_return;  // finished
    co_await run_one(std::move(*next.task), std::move(next.abort), scope);
    if (scope.caller_cancelled()) co_return;
  }
}

asio::awaitable<void> task_service::run_one(task_record t, lifecycle::abort_scope::ticket abort,
                                            lifecycle::abort_scope& scope) {
  task_context ctx;
  ctx.task_id = t.id;
  ctx.params = t.params;
  ctx.cpu = &cpu_;
  ctx.report = [this, id = t.id](double progress) {
    auto r = store_.get(id);
    r->progress = progress;
    store_.update(*r);
    publish_progress(*r);
  };
  const task_kind* kind = kinds_.find(t.kind);
  task_status status = task_status::succeeded;
  std::exception_ptr failure;
  try {
    // A DELETE before it started: it does not start.
    if (abort.abort_requested()) throw boost::system::system_error(asio::error::operation_aborted);
    auto ended = co_await run_kind(*kind, std::move(ctx));
    if (ended.failure)
      failure = ended.failure;
    else
      t.result = std::move(ended.result);
  } catch (...) {
    failure = std::current_exception();
  }
  if (scope.end(abort)) co_await asio::this_coro::reset_cancellation_state();
  // A task that ended anyway keeps its outcome, though a DELETE came too late to matter.
  if (failure && abort.abort_requested()) {
    status = task_status::cancelled;
  } else if (failure) {
    // Cancelled from above (deadline, second signal) is `interrupted`, or with a durable store
    // `queued` again for the next process; anything else is the task's own failure.
    if (scope.caller_cancelled() && settings_.requeue_on_shutdown) {
      requeue(t);
      co_return;
    }
    if (scope.caller_cancelled()) {
      status = task_status::interrupted;
      t.error = "interrupted by the shutdown deadline or a second signal";
    } else {
      status = task_status::failed;
      t.error = log::describe(failure);
    }
  }
  finish(t, status);
}

void task_service::requeue(task_record& t) {
  t.requeue("stopped by the shutdown deadline or a second signal; it runs again after a restart");
  // Under the lock, unlike finish(): `queued` is not final, so a DELETE that found the task in
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

void task_service::finish(task_record& t, task_status status) {
  // Progress reports changed the stored copy; keep them (success sets 1.0), then move to the
  // final status.
  if (status != task_status::succeeded)
    if (auto stored = store_.get(t.id)) t.progress = stored->progress;
  t.move_to(status);
  // Stored and announced before the task leaves running_, so a drain that finds running_
  // empty finds its end published; the lock, which every admission takes, is held for the
  // erase alone.
  store_.update(t);
  publish(t, open_event_text(t), {});
  {
    std::lock_guard lock(mutex_);
    running_.erase(t.id);
  }
  // Every end at debug (the rollout test's ground truth); the unhappy ones at info.
  auto lvl = status == task_status::succeeded ? log::level::debug : log::level::info;
  if (log::enabled(lvl))
    log::write(lvl, "task ended",
               {{"task_id", t.id},
                {"status", to_string(status)},
                {"error", t.error ? boost::json::value(*t.error) : nullptr}});
  task_ended_.notify_all();
}

}  // namespace quiesce::tasks
