// The seam between where tasks are kept and who runs them: every store implements it, and one
// worker_pool (worker_pool.hpp) runs attempts through it (Oban's Engine behaviour, River's
// driver under its executor). The local queue (task_service: memory, sqlite) and the shared one
// (pg::shared_service) differ only below this line: how a task is claimed, how an attempt's
// writes are fenced, where an abort comes from.
#pragma once

#include "lifecycle/abort_scope.hpp"
#include "tasks/task.hpp"

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>

namespace quiesce::tasks {

class task_engine {
 public:
  virtual ~task_engine() = default;

  // Waits until a task may run in this process and claims it into `claimed`: `running`, its
  // attempt counted, `abort` kept as the way to stop it (a DELETE, or a claim lost to another
  // replica). Left empty: no task will come to this process any more (admission closed, nothing
  // left that is ours to run). Throws when the caller is cancelled while it waits. (`claimed` is
  // an out-parameter so that the local queue's claim is its wait alone, with no coroutine frame of
  // its own per task.)
  virtual boost::asio::awaitable<void> claim(lifecycle::abort_scope::ticket abort,
                                             std::optional<task_record>& claimed) = 0;
  // The running attempt's progress in [0, 1]; from the worker's thread, never waits.
  virtual void report(const std::string& task_id, double progress) = 0;
  // The running attempt's checkpoint, replacing the last: stored with the task (durably where
  // the store is) for the next attempt, with its progress if given; from the worker's thread,
  // never waits.
  virtual void checkpoint(const std::string& task_id, boost::json::value checkpoint,
                          std::optional<double> progress) = 0;
  // The attempt ended with `status` (final; its result or error set on `t`): stored, announced
  // and released, fenced by (id, attempt) where another process could have taken it over.
  virtual boost::asio::awaitable<void> finish(task_record t, task_status status) = 0;
  // The attempt was stopped by this process's shutdown and goes back to the queue for whoever
  // runs it next (this process after a restart, or another replica).
  virtual boost::asio::awaitable<void> put_back(task_record t) = 0;
  // Whether a shutdown puts stopped attempts back (put_back) or ends them `interrupted`: only a
  // store that outlives the process can keep them.
  virtual bool keeps_stopped_work() const = 0;
};

}  // namespace quiesce::tasks
