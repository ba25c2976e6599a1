#include "lifecycle/phase.hpp"

namespace quiesce::lifecycle {

std::string_view to_string(phase p) {
  switch (p) {
    case phase::running:
      return "running";
    case phase::draining:
      return "draining";
    case phase::closing:
      return "closing";
    case phase::terminating:
      return "terminating";
    case phase::stopped:
      return "stopped";
  }
  return "unknown";
}

void phase_state::start_clock(clock::time_point signal_at, clock::time_point deadline) {
  deadline_.store(deadline.time_since_epoch().count());
  signal_at_.store(signal_at.time_since_epoch().count());
}

std::optional<phase_state::clock::duration> phase_state::since_signal() const {
  auto at = signal_at_.load();
  if (at == 0) return std::nullopt;
  return clock::now() - clock::time_point(clock::duration(at));
}

std::optional<phase_state::clock::duration> phase_state::until_deadline() const {
  auto at = deadline_.load();
  if (at == 0) return std::nullopt;
  auto left = clock::time_point(clock::duration(at)) - clock::now();
  return left < clock::duration::zero() ? clock::duration::zero() : left;
}

}  // namespace quiesce::lifecycle
