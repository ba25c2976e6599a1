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
  // One attempt, from its claim to its end stored.
  boost::asio::awaitable<void> run_attempt(task_record t, lifecycle::abort_scope::ticket abort,
                                           lifecycle::abort_scope& scope);
  // Runs the task's kind (the one place that starts one): null when it succeeded (its result
  // set on `t`), else why it did not.
  boost::asio::awaitable<std::exception_ptr> run(task_record& t,
                                                 const lifecycle::abort_scope::ticket& abort);

  const std::size_t workers_;
  const kind_registry& kinds_;
  task_engine& engine_;
  boost::asio::thread_pool& cpu_;
};

}  // namespace quiesce::tasks
