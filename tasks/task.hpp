// A task as clients see it: the record (docs/api.md, "Routes") and its state machine.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace quiesce::tasks {

enum class task_status { queued, running, succeeded, failed, cancelled, interrupted };
inline constexpr std::size_t status_count = 6;

std::string_view to_string(task_status s);
bool is_final(task_status s);
// The transitions move_to makes: queued -> running -> final, or queued -> final. The one
// way back, running -> queued, is requeue() (a durable store's shutdown or crash recovery).
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

  // Moves to `to`, stamping times and the message. Throws std::logic_error on a bad transition.
  void move_to(task_status to, time_point now = std::chrono::system_clock::now());
  // Back to `queued` with a reason, so that a later process runs it again (at least once).
  void requeue(std::string_view why);
};

std::string new_task_id();  // a random UUID
// A task as admission makes it: a new id, created now, `queued` with its message.
task_record queued_task(std::string kind, task_params params,
                        std::optional<std::string> idempotency_key = std::nullopt);

}  // namespace quiesce::tasks
