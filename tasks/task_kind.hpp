// What a kind of task is: how its parameters are checked and how it runs.
// A new kind is one file in tasks/ (kind_<name>.cpp) plus its line in task_kinds.cpp.
#pragma once

#include "command/command_attempt.hpp"
#include "command/kinds_file.hpp"
#include "tasks/task.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace quiesce::tasks {

// A parameter a client got wrong; `field` names it in the 400 answer.
struct bad_parameter : std::invalid_argument {
  bad_parameter(std::string f, const std::string& why)
      : std::invalid_argument(why), field(std::move(f)) {}
  std::string field;
};

struct task_context {
  std::string task_id;
  std::string kind;
  int attempt = 0;                     // 1 for the first
  task_params params;                  // validated, defaults filled
  boost::json::value checkpoint;       // the last one an earlier attempt stored, or null
  std::function<void(double)> report;  // progress in [0, 1]; publishes an event
  // Stores a checkpoint with the task (durably where the store is), for the next attempt; with
  // the progress reached, if any, in the same event.
  std::function<void(boost::json::value, std::optional<double>)> save_checkpoint;
  std::optional<std::string>* output = nullptr;      // where a command keeps its output's tail
  std::optional<std::chrono::milliseconds> timeout;  // the task's own (at most the kind's)
  boost::asio::thread_pool* cpu = nullptr;           // for CPU-bound work, off the network threads
};

struct task_kind {
  std::string name;
  // Returns the parameters with every default filled in; throws bad_parameter.
  std::function<boost::json::object(const boost::json::object&)> validate;
  // Runs the task; the value is the task's `result`. Cancellation arrives as terminal
  // cancellation of this coroutine.
  std::function<boost::asio::awaitable<boost::json::value>(task_context)> run;
  // Retries (docs/api.md, "Job options"): a task's default max_attempts, and the first retry's
  // delay, doubling per failure up to backoff_max, with jitter.
  int max_attempts = 1;
  std::chrono::milliseconds backoff{std::chrono::seconds(1)};
  std::chrono::milliseconds backoff_max{std::chrono::hours(1)};
  // The longest timeout_seconds a task may ask for (none: any), and whether the kind stops itself
  // at its context's timeout (a command does, with its grace); else the worker cancels it.
  std::optional<double> max_timeout_seconds{};
  bool keeps_its_timeout = false;
};

// Filled from the configuration (app/settings.cpp; every default is in app/config.hpp).
struct kind_settings {
  double default_seconds{};  // `sleep` without `seconds`
  double max_seconds{};      // the longest task a client may ask for
};

class kind_registry {
 public:
  void add(task_kind k);
  const task_kind* find(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, task_kind, std::less<>> kinds_;
};

kind_registry builtin_kinds(const kind_settings& settings);
// The operator's command kinds (--kinds), each run as a child process per attempt.
void add_command_kinds(kind_registry& r, const std::vector<command::kind_spec>& specs,
                       const command::output_limits& limits);

// Runs `k` and returns how it ended instead of throwing: a runner races it with `||` against a
// stop request, and Asio's `||` waits for one branch to *succeed*, so a kind that threw would
// leave the race waiting on the stop request for ever.
struct run_outcome {
  boost::json::value result;
  std::exception_ptr failure;  // set: what the kind threw (a cancellation included)
};
boost::asio::awaitable<run_outcome> run_kind(const task_kind& k, task_context ctx);

// A task as admission makes it, the same for every store: the kind found (else bad_parameter on
// "kind"), its parameters validated, the job options checked against the kind (a timeout above
// the kind's is a bad_parameter) and the kind's defaults filled in.
task_record admitted_task(const kind_registry& kinds, std::string_view kind,
                          const boost::json::object& params,
                          std::optional<std::string> idempotency_key, const job_options& options);

// "timed out after 0.3 s": the error of an attempt that outlived its timeout, for every kind.
std::string timed_out_after(std::chrono::milliseconds limit);

// Helpers for kinds' validate(): refuse fields the kind does not know (a typo would otherwise
// run with a default), and read a number in [lo, hi], or `fallback` when absent.
void known_fields(const boost::json::object& p, std::initializer_list<std::string_view> fields);
double number_param(const boost::json::object& p, std::string_view field, double fallback,
                    double lo, double hi);

}  // namespace quiesce::tasks
