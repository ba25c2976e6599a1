// Turns SIGTERM/SIGINT into the drain (README, "The drain"), one phase after another.
// The coordinator knows *when* things happen; what draining means for tasks and streams is
// given to it as hooks by app/, so lifecycle/ depends on neither.
#pragma once

#include "lifecycle/cancellation_tree.hpp"
#include "lifecycle/phase.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace quiesce::lifecycle {

// Filled from the configuration (app/settings.cpp; every default is in app/config.hpp).
struct drain_settings {
  std::chrono::milliseconds drain_delay{};       // listeners stay open this long after the signal
  std::chrono::milliseconds close_spread{};      // 1012 closes spread over this window
  std::chrono::milliseconds close_timeout{};     // wait for close handshakes at most this long
  std::chrono::milliseconds shutdown_timeout{};  // from the signal to a forced stop
};

struct drain_hooks {
  std::function<void()> stop_admission;                     // refuse new work from now on
  std::function<boost::asio::awaitable<void>()> work_done;  // no task queued or running
  // Forced: what is still queued is interrupted (or left queued for a durable store's next
  // process) and its subscribers told; completes when told (bounded by close_timeout).
  std::function<boost::asio::awaitable<void>()> interrupt_queued;
  // Forced, before anything is interrupted: every unfinished task is about to end at once.
  std::function<void()> forcing;
  // Tell every stream `draining` and close it 1012; complete when closed (bounded by the hook).
  std::function<boost::asio::awaitable<void>(std::chrono::milliseconds spread)> close_streams;
  std::function<boost::json::object()> counts;  // for the phase log lines
};

// Exit codes: the process exits with what run() returns.
inline constexpr int exit_drained = 0;
inline constexpr int exit_forced = 2;  // deadline or second signal: some work was interrupted

class coordinator {
 public:
  coordinator(boost::asio::any_io_executor executor, drain_settings settings, drain_hooks hooks);

  cancellation_tree& tree() { return tree_; }
  // run() must be spawned here: the coordinator's state is touched only on this strand.
  boost::asio::any_io_executor executor() const { return strand_; }
  const phase_state& state() const { return state_; }
  // The public listener died of an error: /readyz fails from now on; the drain is unchanged.
  void lose_listener() { state_.lose_listener(); }

  // Waits for the first signal, drains, and returns the exit code once every coroutine ended.
  boost::asio::awaitable<int> run();

 private:
  boost::asio::awaitable<void> drain_gracefully();
  boost::asio::awaitable<std::string> force_trigger(boost::asio::steady_timer& deadline);
  boost::asio::awaitable<void> interrupt(const std::string& reason);
  boost::asio::awaitable<void> end_all();
  boost::asio::awaitable<void> close_admission();
  void enter(phase p, std::string_view msg, boost::json::object fields = {});

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  drain_settings settings_;
  drain_hooks hooks_;
  // Installed at construction so a signal that arrives during start-up is not lost.
  boost::asio::signal_set signals_;
  cancellation_tree tree_;
  phase_state state_;
  bool admission_closed_ = false;
};

}  // namespace quiesce::lifecycle
