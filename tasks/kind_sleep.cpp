// `sleep`: a timer-driven stand-in for I/O-bound work (the original's only task), reporting
// progress in tenths, each with a checkpoint: an attempt after a restart or a rescue sleeps only
// what is left. Parameter `seconds` (default --task-seconds).
#include "tasks/task_kind.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace quiesce::tasks {
namespace asio = boost::asio;

namespace {

// What an earlier attempt slept, from its checkpoint; 0 without one.
double slept_before(const boost::json::value& checkpoint, double total) {
  auto* o = checkpoint.if_object();
  auto* v = o ? o->if_contains("slept_seconds") : nullptr;
  if (!v || !v->is_number()) return 0;
  return std::clamp(v->to_number<double>(), 0.0, total);
}

}  // namespace

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
    const double total = ctx.params.at("seconds").as_double();
    // Nothing to wait for: ten expired timers would be ten trips through the event loop.
    if (total == 0) co_return boost::json::object{{"slept_seconds", 0.0}};
    const double before = slept_before(ctx.checkpoint, total);
    // Absolute expiries from where this attempt starts, so reporting does not stretch the task.
    const auto start = std::chrono::steady_clock::now() -
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(before));
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (int i = 1; i <= steps; ++i) {
      const double at = total * i / steps;
      if (at <= before) continue;
      timer.expires_at(start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(at)));
      co_await timer.async_wait(asio::use_awaitable);
      if (i < steps)
        ctx.save_checkpoint(boost::json::object{{"slept_seconds", at}}, double(i) / steps);
    }
    co_return boost::json::object{{"slept_seconds", total}};
  };
  return k;
}

}  // namespace quiesce::tasks
