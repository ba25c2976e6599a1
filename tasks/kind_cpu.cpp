// `cpu`: CPU-bound work (a hash chain) run in chunks on the CPU pool, never on a network
// thread. Parameter `iterations` (default 20 million) sets how much work.
#include "tasks/task_kind.hpp"

#include "lifecycle/cancelled.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <cstdint>

namespace quiesce::tasks {
namespace asio = boost::asio;

namespace {
std::uint64_t splitmix_chain(std::uint64_t x, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    x += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    x = z ^ (z >> 31);
  }
  return x;
}
}  // namespace

task_kind cpu_kind(const kind_settings&) {
  task_kind k;
  k.name = "cpu";
  k.validate = [](const boost::json::object& p) {
    known_fields(p, {"iterations"});
    boost::json::object out;
    out["iterations"] = static_cast<std::int64_t>(number_param(p, "iterations", 20e6, 1.0, 1e11));
    return out;
  };
  k.run = [](task_context ctx) -> asio::awaitable<boost::json::value> {
    const auto total = static_cast<std::uint64_t>(ctx.params.at("iterations").as_int64());
    // Chunks bound how long a cancel waits; tenths bound how many events a task publishes.
    const std::uint64_t chunk = std::clamp<std::uint64_t>(total / 10, 1, 5'000'000);
    std::uint64_t state = 0, done = 0;
    int reported_tenths = 0;
    while (done < total) {
      std::uint64_t n = std::min(chunk, total - done);
      state = co_await asio::co_spawn(
          *ctx.cpu,
          [state, n]() -> asio::awaitable<std::uint64_t> { co_return splitmix_chain(state, n); },
          asio::use_awaitable);
      done += n;
      co_await lifecycle::throw_if_cancelled();  // between chunks: a chunk runs to its end
      int tenths = static_cast<int>(done * 10 / total);
      if (tenths > reported_tenths && done < total) {
        reported_tenths = tenths;
        ctx.report(tenths / 10.0);
      }
    }
    co_return boost::json::object{{"iterations", total}, {"checksum", std::to_string(state)}};
  };
  return k;
}

}  // namespace quiesce::tasks
