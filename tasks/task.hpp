// A task as clients see it: the record (docs/api.md, "Routes") and its state machine.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quiesce::tasks {

// `scheduled`: accepted, not runnable before its run_at (a delay, or a retry's backoff).
enum class task_status { queued, running, succeeded, failed, cancelled, interrupted, scheduled };
inline constexpr std::size_t status_count = 7;

std::string_view to_string(task_status s);
bool is_final(task_status s);
// The transitions move_to makes: (scheduled ->) queued -> running -> final, queued or scheduled ->
// final, running -> scheduled (a failed attempt with attempts left), and failed, cancelled or
// interrupted -> queued (the retry route). The other way back, running -> queued, is requeue() (a
// durable store's shutdown or crash recovery).
bool can_move(task_status from, task_status to);
// "Task <id> queued", "... processed" (as the original), "... failed: why", and so on.
std::string status_message(std::string_view id, task_status s);

// A task's parameters, fixed once it is admitted: every copy of its record shares one object
// (a record is copied several times per task, by the store, the worker and its events, and each
// copy of an object was two allocations). Reads only, from any thread.
class task_params {
 public:
  task_params() = default;
  task_params(boost::json::object o)
      : object_(std::make_shared<const boost::json::object>(std::move(o))) {}
  const boost::json::object& get() const { return object_ ? *object_ : empty(); }
  const boost::json::value& at(std::string_view key) const { return get().at(key); }

 private:
  static const boost::json::object& empty();
  std::shared_ptr<const boost::json::object> object_;
};

// A failed attempt, kept in the record for the attempts after it.
struct attempt_error {
  int attempt = 0;
  std::chrono::system_clock::time_point at{};
  std::string error;
};

// Job options a client may set on a POST (docs/api.md); every one has the kind's or a default.
inline constexpr int default_priority = 5;
struct job_options {
  std::optional<int> max_attempts;                              // none: the kind's
  std::optional<double> timeout_seconds;                        // none: the kind's
  int priority = default_priority;                              // 0 (first) to 9
  std::optional<std::chrono::system_clock::time_point> run_at;  // none: now
};

struct task_record {
  using time_point = std::chrono::system_clock::time_point;

  std::string id;
  std::string kind;
  task_params params;
  task_status status = task_status::queued;
  double progress = 0.0;
  std::string message;
  time_point created_at{};
  std::optional<time_point> started_at;
  std::optional<time_point> finished_at;
  boost::json::value result;  // null until succeeded
  std::optional<std::string> error;
  std::optional<std::string> idempotency_key;
  int attempt = 0;  // how many times it started running; above 1 it is a retry
  // The last checkpoint an attempt stored (null: none), handed to the next attempt.
  boost::json::value checkpoint;
  std::optional<std::string> output;  // a command's last output (its tail), as valid UTF-8
  int priority = default_priority;
  int max_attempts = 1;                   // failed attempts allowed before it ends `failed`
  std::optional<double> timeout_seconds;  // per attempt; none: the kind's
  std::optional<time_point> run_at;       // when a `scheduled` task becomes runnable
  std::vector<attempt_error> errors;      // the failed attempts so far, oldest first

  // Moves to `to`, stamping times and the message. Throws std::logic_error on a bad transition.
  void move_to(task_status to, time_point now = std::chrono::system_clock::now());
  // Back to `queued` with a reason, so that a later process runs it again (at least once).
  void requeue(std::string_view why);
  // The running attempt failed with `error` (set on the record): counted in `errors`. Returns
  // whether attempts are left (a requeue by a shutdown or a rescue counts none).
  bool count_failure(time_point now = std::chrono::system_clock::now());
  // The retry route: a failed, cancelled or interrupted task is `queued` again, with its
  // checkpoint and one more attempt allowed if it used them all.
  void rerun();
};

std::string new_task_id();  // a random UUID
// A task as admission makes it: a new id, created now, `queued` with its message.
// `scheduled` instead when options.run_at is in the future.
task_record queued_task(std::string kind, task_params params,
                        std::optional<std::string> idempotency_key = std::nullopt,
                        const job_options& options = {}, int kind_max_attempts = 1);

}  // namespace quiesce::tasks
