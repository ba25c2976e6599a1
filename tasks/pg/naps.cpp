#include "tasks/pg/naps.hpp"

#include "lifecycle/cancelled.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace quiesce::tasks::pg {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

asio::awaitable<void> nap(lifecycle::event_count& wake,
                          std::optional<std::chrono::milliseconds> d) {
  auto key = wake.prepare_wait();
  if (!d) co_return co_await wake.wait(key);
  asio::steady_timer bound(co_await asio::this_coro::executor, *d);
  boost::system::error_code ec;
  co_await (wake.wait(key) || bound.async_wait(asio::redirect_error(asio::use_awaitable, ec)));
  co_await lifecycle::throw_if_cancelled();
}

asio::awaitable<void> back_off(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  co_await lifecycle::throw_if_cancelled();
}

}  // namespace quiesce::tasks::pg
