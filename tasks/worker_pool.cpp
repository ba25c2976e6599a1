#include "tasks/worker_pool.hpp"

#include "support/log.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#include <cmath>
#include <memory>
#include <random>
#include <stdexcept>

namespace quiesce::tasks {
namespace asio = boost::asio;

worker_pool::worker_pool(std::size_t workers, const kind_registry& kinds, task_engine& engine,
                         asio::thread_pool& cpu)
    : workers_(workers), kinds_(kinds), engine_(engine), cpu_(cpu) {}

void worker_pool::start(const lifecycle::executor_source& strands, lifecycle::task_group& group) {
  for (std::size_t i = 0; i < workers_; ++i) {
    group.spawn(strands(), worker(), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);  // a bug: let it reach main and be seen
    });
  }
}

// One coroutine per worker for its whole life: a task is aborted through the scope, not through
// a coroutine of its own (lifecycle/abort_scope.hpp says why).
asio::awaitable<void> worker_pool::worker() {
  auto scope = std::make_shared<lifecycle::abort_scope>(co_await asio::this_coro::executor);
  co_await scope->run(work(*scope));
}

asio::awaitable<void> worker_pool::work(lifecycle::abort_scope& scope) {
  for (;;) {
    // The ticket exists before the claim, so that whoever can find the claimed task can stop it.
    auto abort = scope.begin();
    std::optional<task_record> t;
    try {
      co_await engine_.claim(abort, t);
    } catch (const boost::system::system_error&) {
      co_return;  // terminal cancellation while idle
    }
    if (!t) co_return;  // nothing more for this process
    co_await run_attempt(*t, abort, scope);
    if (scope.caller_cancelled()) co_return;
  }
}

asio::awaitable<void> worker_pool::run_attempt(task_record& t,
                                               const lifecycle::abort_scope::ticket& abort,
                                               lifecycle::abort_scope& scope) {
  std::exception_ptr failure;
  // Kept by an earlier binary (or another replica's version) whose kinds differ.
  if (const task_kind* kind = kinds_.find(t.kind); !kind) {
    failure = std::make_exception_ptr(
        std::runtime_error("this server does not know the kind '" + t.kind + "'"));
  } else if (abort.abort_requested()) {  // a DELETE before it started: it does not start
    failure = std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted));
  } else {
    try {
      auto ended = co_await run_kind(*kind, context_for(t));
      failure = ended.failure;
      if (!failure) t.result = std::move(ended.result);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  // Aborted or cancelled from above, the loop's state is cancelled: the end must still be stored,
  // so the state is made anew (a later terminal cancellation still stops the store's retries).
  if (scope.end(abort) || scope.caller_cancelled())
    co_await asio::this_coro::reset_cancellation_state();
  // One call of each: a temporary of every call site would stay in this frame.
  if (auto status = ending(t, failure, abort, scope))
    co_await engine_.finish(std::move(t), *status);
  else
    co_await engine_.put_back(std::move(t));
}

std::optional<task_status> worker_pool::ending(task_record& t, const std::exception_ptr& failure,
                                               const lifecycle::abort_scope::ticket& abort,
                                               const lifecycle::abort_scope& scope) const {
  if (!failure) return task_status::succeeded;
  // A task that ended anyway keeps its outcome, though a DELETE came too late to matter.
  if (abort.abort_requested()) return task_status::cancelled;
  // Cancelled from above (deadline, second signal): put back for whoever runs next where the
  // store outlives this process, else `interrupted`. Anything else is the task's own failure.
  if (scope.caller_cancelled() && engine_.keeps_stopped_work()) return std::nullopt;
  if (scope.caller_cancelled()) {
    t.error = "interrupted by the shutdown deadline or a second signal";
    return task_status::interrupted;
  }
  t.error = log::describe(failure);
  if (!t.count_failure()) return task_status::failed;
  t.run_at = std::chrono::system_clock::now() + retry_delay(t);
  return task_status::scheduled;
}

// The kind's backoff, doubled per failure so far, at most its maximum, then a random part of
// its second half (jitter: retries of tasks that failed together spread out).
std::chrono::milliseconds worker_pool::retry_delay(const task_record& t) const {
  const task_kind* k = kinds_.find(t.kind);
  auto first = k ? k->backoff : std::chrono::milliseconds(std::chrono::seconds(1));
  auto most = k ? k->backoff_max : std::chrono::milliseconds(std::chrono::hours(1));
  auto d = first;
  for (std::size_t i = 1; i < t.errors.size() && d < most; ++i) d *= 2;
  d = std::min(d, most);
  thread_local std::minstd_rand random{std::random_device{}()};
  auto half = d.count() / 2;
  return std::chrono::milliseconds(
      half + std::uniform_int_distribution<std::int64_t>(0, d.count() - half)(random));
}

task_context worker_pool::context_for(task_record& t) {
  task_context ctx;
  ctx.task_id = t.id;
  ctx.kind = t.kind;
  ctx.attempt = t.attempt;
  ctx.params = t.params;
  ctx.checkpoint = t.checkpoint;
  ctx.cpu = &cpu_;
  ctx.output = &t.output;
  if (t.timeout_seconds)
    ctx.timeout = std::chrono::milliseconds(std::llround(*t.timeout_seconds * 1000));
  ctx.report = [this, id = t.id](double progress) { engine_.report(id, progress); };
  // The attempt's own record keeps it too: its end or its return to the queue stores it again.
  ctx.save_checkpoint = [this, &t](boost::json::value v, std::optional<double> progress) {
    t.checkpoint = v;
    engine_.checkpoint(t.id, std::move(v), progress);
  };
  return ctx;
}

}  // namespace quiesce::tasks
