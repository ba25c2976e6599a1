// Where the process is in its life; read by every request, written only by the coordinator.
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

  void start_clock(clock::time_point signal_at, clock::time_point deadline);
  std::optional<clock::duration> since_signal() const;
  std::optional<clock::duration> until_deadline() const;

 private:
  std::atomic<phase> phase_{phase::running};
  std::atomic<clock::rep> signal_at_{0};  // 0: no signal yet
  std::atomic<clock::rep> deadline_{0};
};

}  // namespace quiesce::lifecycle
