#include "lifecycle/coordinator.hpp"

#include "support/log.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>

namespace quiesce::lifecycle {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using std::chrono::milliseconds;

namespace {
const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : "SIGTERM"; }

// A configured duration (the drain delay) or a bound raced with `||` against the event being
// waited for (close_timeout): the drain never polls, it waits on events with a limit.
asio::awaitable<void> timer_for(milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}
}  // namespace

coordinator::coordinator(asio::any_io_executor executor, drain_settings settings, drain_hooks hooks)
    : strand_(asio::make_strand(executor)),
      settings_(settings),
      hooks_(std::move(hooks)),
      signals_(strand_, SIGINT, SIGTERM) {}

void coordinator::enter(phase p, std::string_view msg, boost::json::object fields) {
  state_.set(p);
  fields["phase"] = to_string(p);
  if (auto since = state_.since_signal())
    fields["since_signal_ms"] = std::chrono::duration_cast<milliseconds>(*since).count();
  for (auto& [k, v] : hooks_.counts()) fields[k] = v;
  log::always(msg, std::move(fields));
}

asio::awaitable<void> coordinator::close_admission() {
  if (std::exchange(admission_closed_, true)) co_return;
  hooks_.stop_admission();
  // Partial reaches only the children that opted in: the acceptors, which close at once.
  tree_.drain();
  co_await tree_.listeners.wait_empty();
  log::always("listeners closed",
              {{"since_signal_ms",
                std::chrono::duration_cast<milliseconds>(*state_.since_signal()).count()}});
}

asio::awaitable<int> coordinator::run() {
  int sig = co_await signals_.async_wait(asio::use_awaitable);
  auto now = phase_state::clock::now();
  state_.start_clock(now, now + settings_.shutdown_timeout);
  enter(
      phase::draining, "drain started",
      {{"signal", signal_name(sig)}, {"shutdown_timeout_ms", settings_.shutdown_timeout.count()}});

  asio::steady_timer deadline(strand_, settings_.shutdown_timeout);
  auto outcome = co_await (drain_gracefully() || force_trigger(deadline));
  int code = exit_drained;
  if (outcome.index() == 1) {
    code = exit_forced;
    co_await interrupt(std::get<1>(outcome));
  }
  co_await end_all();
  enter(phase::stopped, "stopped", {{"exit_code", code}});
  co_return code;
}

asio::awaitable<void> coordinator::drain_gracefully() {
  if (settings_.drain_delay.count() > 0) co_await timer_for(settings_.drain_delay);
  co_await close_admission();
  co_await hooks_.work_done();
  enter(phase::closing, "tasks finished");
  co_await hooks_.close_streams(settings_.close_spread);
  log::always("streams closed",
              {{"since_signal_ms",
                std::chrono::duration_cast<milliseconds>(*state_.since_signal()).count()}});
}

asio::awaitable<std::string> coordinator::force_trigger(asio::steady_timer& deadline) {
  auto second_signal = [this]() -> asio::awaitable<std::string> {
    int sig = co_await signals_.async_wait(asio::use_awaitable);
    co_return std::string("second ") + signal_name(sig);
  };
  auto deadline_passed = [&deadline]() -> asio::awaitable<std::string> {
    co_await deadline.async_wait(asio::use_awaitable);
    co_return std::string("shutdown timeout");
  };
  auto which = co_await (second_signal() || deadline_passed());
  co_return std::visit([](auto& s) { return s; }, which);
}

asio::awaitable<void> coordinator::interrupt(const std::string& reason) {
  enter(phase::terminating, "drain forced", {{"reason", reason}});
  hooks_.forcing();
  co_await close_admission();
  // Terminal reaches running tasks through their workers; they end `interrupted` and say so.
  tree_.workers.emit(asio::cancellation_type::terminal);
  co_await (tree_.workers.wait_empty() || timer_for(settings_.close_timeout));
  co_await (hooks_.interrupt_queued() || timer_for(settings_.close_timeout));
  co_await hooks_.close_streams(milliseconds(0));
}

asio::awaitable<void> coordinator::end_all() {
  // What is left is idle HTTP connections and the admin listener: they end now.
  tree_.stop();
  auto all_ended = [this]() -> asio::awaitable<void> {
    for (auto* g :
         {&tree_.listeners, &tree_.connections, &tree_.workers, &tree_.admin, &tree_.store})
      co_await g->wait_empty();
  };
  co_await (all_ended() || timer_for(settings_.close_timeout));
  signals_.cancel();
}

}  // namespace quiesce::lifecycle
