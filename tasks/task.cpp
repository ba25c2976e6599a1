#include "tasks/task.hpp"

#include <boost/uuid/uuid.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <system_error>

namespace quiesce::tasks {

std::string_view to_string(task_status s) {
  switch (s) {
    case task_status::queued:
      return "queued";
    case task_status::running:
      return "running";
    case task_status::succeeded:
      return "succeeded";
    case task_status::failed:
      return "failed";
    case task_status::cancelled:
      return "cancelled";
    case task_status::interrupted:
      return "interrupted";
    case task_status::scheduled:
      return "scheduled";
  }
  return "unknown";
}

bool is_final(task_status s) {
  return s != task_status::queued && s != task_status::running && s != task_status::scheduled;
}

bool can_move(task_status from, task_status to) {
  switch (from) {
    case task_status::scheduled:
      return to == task_status::queued || to == task_status::cancelled ||
             to == task_status::interrupted;
    case task_status::queued:
      return to != task_status::queued && to != task_status::scheduled;
    case task_status::running:
      return is_final(to) || to == task_status::scheduled;
    case task_status::succeeded:
      return false;
    default:  // failed, cancelled, interrupted: the retry route
      return to == task_status::queued;
  }
}

std::string status_message(std::string_view id, task_status s) {
  // One allocation: three messages per task, and concatenating temporaries made four each.
  std::string_view word = s == task_status::succeeded ? "processed" : to_string(s);
  std::string m;
  m.reserve(6 + id.size() + word.size());
  m += "Task ";
  m += id;
  m += ' ';
  m += word;
  return m;
}

const boost::json::object& task_params::empty() {
  static const boost::json::object none;
  return none;
}

void task_record::move_to(task_status to, time_point now) {
  if (!can_move(status, to))
    throw std::logic_error("task " + id + " cannot move from " + std::string(to_string(status)) +
                           " to " + std::string(to_string(to)));
  status = to;
  message = status_message(id, to);
  if (to == task_status::running) {
    started_at = now;
    ++attempt;
  }
  if (is_final(to)) finished_at = now;
  if (to == task_status::succeeded) progress = 1.0;
}

bool task_record::count_failure(time_point now) {
  errors.push_back({attempt, now, error.value_or("")});
  return static_cast<int>(errors.size()) < max_attempts;
}

void task_record::rerun() {
  move_to(task_status::queued);
  max_attempts = std::max(max_attempts, static_cast<int>(errors.size()) + 1);
  finished_at.reset();
  started_at.reset();
  run_at.reset();
  error.reset();
  result = nullptr;
  progress = 0.0;
}

void task_record::requeue(std::string_view why) {
  if (is_final(status)) throw std::logic_error("task " + id + " has ended; it cannot be requeued");
  status = task_status::queued;
  message = "Task " + id + " requeued: " + std::string(why);
  started_at.reset();
  progress = 0.0;
}

namespace {

// Kernel randomness, fetched 4 KiB at a time: Boost's random_generator makes one getrandom
// call per id (a system call on every POST); this makes one per 256 ids, with the same source.
class os_random_bytes {
 public:
  void fill(std::span<std::uint8_t> out) {
    if (out.size() > buffer_.size() - used_) refill();
    std::memcpy(out.data(), buffer_.data() + used_, out.size());
    used_ += out.size();
  }

 private:
  void refill() {
    for (std::size_t got = 0; got < buffer_.size();) {
      const ssize_t n = ::getrandom(buffer_.data() + got, buffer_.size() - got, 0);
      if (n < 0 && errno != EINTR)
        throw std::system_error(errno, std::system_category(), "getrandom");
      if (n > 0) got += static_cast<std::size_t>(n);
    }
    used_ = 0;
  }

  std::array<std::uint8_t, 4096> buffer_{};
  std::size_t used_ = buffer_.size();
};

}  // namespace

std::string new_task_id() {
  thread_local os_random_bytes random;  // one per thread: no lock
  boost::uuids::uuid id{};
  random.fill(id.data);
  id.data[6] = static_cast<std::uint8_t>((id.data[6] & 0x0F) | 0x40);  // version 4 (random)
  id.data[8] = static_cast<std::uint8_t>((id.data[8] & 0x3F) | 0x80);  // RFC 4122 variant
  return boost::uuids::to_string(id);
}

task_record queued_task(std::string kind, task_params params,
                        std::optional<std::string> idempotency_key, const job_options& options,
                        int kind_max_attempts) {
  task_record t;
  t.id = new_task_id();
  t.kind = std::move(kind);
  t.params = std::move(params);
  t.created_at = std::chrono::system_clock::now();
  t.idempotency_key = std::move(idempotency_key);
  t.priority = options.priority;
  t.max_attempts = options.max_attempts.value_or(kind_max_attempts);
  t.timeout_seconds = options.timeout_seconds;
  if (options.run_at && *options.run_at > t.created_at) {
    t.status = task_status::scheduled;
    t.run_at = options.run_at;
  }
  t.message = status_message(t.id, t.status);
  return t;
}

}  // namespace quiesce::tasks
