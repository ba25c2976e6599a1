// Where the process is in its life; read by every request, written by the coordinator (and by
// the public listener if it dies).
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string_view>

namespace quiesce::lifecycle {

enum class phase {
  running,      // serving and admitting work
  draining,     // signal received: no new work; accepted tasks finish
  closing,      // work done: streams are told and closed
  terminating,  // deadline or second signal: work is interrupted
  stopped,
};

std::string_view to_string(phase p);

class phase_state {
 public:
  using clock = std::chrono::steady_clock;

  phase current() const { return phase_.load(std::memory_order_acquire); }
  bool draining() const { return current() != phase::running; }
  void set(phase p) { phase_.store(p, std::memory_order_release); }
  // Ready for traffic: running, and the public listener has not died.
  bool ready() const { return !draining() && !listener_lost_.load(std::memory_order_acquire); }
  // The public listener ended by an error, not by the drain: /readyz says so from now on.
  void lose_listener() { listener_lost_.store(true, std::memory_order_release); }

  void start_clock(clock::time_point signal_at, clock::time_point deadline);
  std::optional<clock::duration> since_signal() const;
  std::optional<clock::duration> until_deadline() const;

 private:
  std::atomic<phase> phase_{phase::running};
  std::atomic<bool> listener_lost_{false};
  std::atomic<clock::rep> signal_at_{0};  // 0: no signal yet
  std::atomic<clock::rep> deadline_{0};
};

}  // namespace quiesce::lifecycle
