// `sleep`: a timer-driven stand-in for I/O-bound work (the original's only task), reporting
// progress in tenths. Parameter `seconds` (default --task-seconds).
#include "tasks/task_kind.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace quiesce::tasks {
namespace asio = boost::asio;

task_kind sleep_kind(const kind_settings& s) {
  task_kind k;
  k.name = "sleep";
  k.validate = [s](const boost::json::object& p) {
    known_fields(p, {"seconds"});
    boost::json::object out;
    out["seconds"] = number_param(p, "seconds", s.default_seconds, 0.0, s.max_seconds);
    return out;
  };
  k.run = [](task_context ctx) -> asio::awaitable<boost::json::value> {
    constexpr int steps = 10;
    auto total = std::chrono::duration<double>(ctx.params.at("seconds").as_double());
    // Nothing to wait for: ten expired timers would be ten trips through the event loop.
    if (total.count() == 0) co_return boost::json::object{{"slept_seconds", 0.0}};
    auto start = std::chrono::steady_clock::now();
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (int i = 1; i <= steps; ++i) {
      // Absolute expiries, so reporting does not stretch the task.
      timer.expires_at(start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   total * i / steps));
      co_await timer.async_wait(asio::use_awaitable);
      if (i < steps) ctx.report(double(i) / steps);
    }
    co_return boost::json::object{{"slept_seconds", total.count()}};
  };
  return k;
}

}  // namespace quiesce::tasks
