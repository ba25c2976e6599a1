// What the routes and the drain ask of the tasks, whichever store holds them: task_service keeps
// the queue in this process (memory, sqlite), pg::shared_service in PostgreSQL for every replica.
#pragma once

#include "lifecycle/task_group.hpp"
#include "tasks/task.hpp"
#include "tasks/task_kind.hpp"
#include "tasks/task_observer.hpp"

#include <boost/asio/awaitable.hpp>
#include "lifecycle/executor_source.hpp"

#include <array>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace quiesce::tasks {

// created/replayed carry the task; `unavailable`: it could not be stored, so it was not accepted.
enum class admit_outcome { created, replayed, queue_full, closed, unavailable };
struct admission {
  admit_outcome outcome;
  std::optional<task_record> task;
  // With a task: its body as clients read it (task_text). The local service makes it with the
  // `queued` event's text, the same record's, so that it is serialised once.
  std::string text{};
};

enum class cancel_outcome { not_found, already_finished, cancelled };
// `not_retriable`: it neither failed nor was cancelled or interrupted (409).
enum class retry_outcome { not_found, not_retriable, retried, queue_full, closed };

struct task_counts {
  std::size_t queued = 0, running = 0, capacity = 0, scheduled = 0;
  std::array<std::size_t, status_count> by_status{};
};

// The store cannot answer now (PostgreSQL unreachable): the route says 503, not 500.
struct store_unavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class service {
 public:
  virtual ~service() = default;
  virtual const kind_registry& kinds() const = 0;
  // Set before start(); told of every status change from then on.
  virtual void observe(task_observer& o) = 0;

  // Checks kind and parameters (throws bad_parameter, field "kind" for an unknown kind), then
  // admits the task; completes once it is stored (or refused): a 2xx may follow at once.
  virtual boost::asio::awaitable<admission> admit(std::string kind, boost::json::object params,
                                                  std::optional<std::string> idempotency_key,
                                                  job_options options) = 0;
  // What a client may see of a task; throws store_unavailable.
  virtual boost::asio::awaitable<std::optional<task_record>> find(std::string id) = 0;
  // Cancels a queued task at once, a running one through whoever runs it.
  virtual boost::asio::awaitable<std::pair<cancel_outcome, std::optional<task_record>>> cancel(
      std::string id) = 0;
  // The retry route: a failed, cancelled or interrupted task is queued again (task_record::rerun)
  // and stored before this completes.
  virtual boost::asio::awaitable<std::pair<retry_outcome, std::optional<task_record>>> retry(
      std::string id) = 0;
  // The service's counts (every replica's with a shared store); throws store_unavailable.
  virtual boost::asio::awaitable<task_counts> read_counts() = 0;
  // Without waiting: this process's view (a shared store's as of its last heartbeat).
  virtual task_counts known_counts() const = 0;
  virtual bool accepting() const = 0;
  virtual bool store_healthy() const = 0;

  // Lifecycle: spawn the workers into `group`, each on a strand from `strands`; close
  // admission; wait until no task this process took is left and every event is delivered; at
  // the deadline, tell the subscribers of what never started (interrupted, or left queued for
  // whoever runs it next).
  virtual void start(lifecycle::executor_source strands, lifecycle::task_group& group) = 0;
  virtual void stop_admission() = 0;
  virtual boost::asio::awaitable<void> wait_idle() = 0;
  virtual boost::asio::awaitable<void> interrupt_queued() = 0;
};

}  // namespace quiesce::tasks
