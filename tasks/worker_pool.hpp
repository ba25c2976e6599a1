// The workers, for every store: each a coroutine on its own strand that claims a task through the
// store's task_engine, runs an attempt of its kind and reports how it ended, until the engine has
// nothing more for this process (a drain never drops accepted work).
#pragma once

#include "lifecycle/abort_scope.hpp"
#include "lifecycle/executor_source.hpp"
#include "lifecycle/task_group.hpp"
#include "tasks/task_engine.hpp"
#include "tasks/task_kind.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cstddef>
#include <exception>
#include <optional>

namespace quiesce::tasks {

class worker_pool {
 public:
  // `kinds` and `engine` outlive the pool; `cpu` runs CPU-bound kinds off the network threads.
  worker_pool(std::size_t workers, const kind_registry& kinds, task_engine& engine,
              boost::asio::thread_pool& cpu);

  // Spawns the workers into `group`, each on a strand from `strands`.
  void start(const lifecycle::executor_source& strands, lifecycle::task_group& group);

 private:
  boost::asio::awaitable<void> worker();
  boost::asio::awaitable<void> work(lifecycle::abort_scope& scope);  // the worker's loop
  // One attempt, from its claim to its end stored: the one place that starts a task's kind. `t`
  // and `abort` are the loop's, which awaits this: its frame stays under the 1,020 bytes Asio
  // recycles (docs/development.md).
  boost::asio::awaitable<void> run_attempt(task_record& t,
                                           const lifecycle::abort_scope::ticket& abort,
                                           lifecycle::abort_scope& scope);
  task_context context_for(task_record& t);  // refers to `t`, which outlives the attempt
  // How an attempt that ended with `failure` (null: success) ends: its final status, with its
  // error set on `t`, or none when it goes back to the queue.
  std::optional<task_status> ending(task_record& t, const std::exception_ptr& failure,
                                    const lifecycle::abort_scope::ticket& abort,
                                    const lifecycle::abort_scope& scope) const;

  std::chrono::milliseconds retry_delay(const task_record& t) const;  // before its next attempt

  const std::size_t workers_;
  const kind_registry& kinds_;
  task_engine& engine_;
  boost::asio::thread_pool& cpu_;
};

}  // namespace quiesce::tasks
