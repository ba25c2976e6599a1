#include "tasks/pg/naps.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace quiesce::tasks::pg {
namespace asio = boost::asio;

asio::awaitable<void> nap(asio::steady_timer& wake, std::optional<std::chrono::milliseconds> d) {
  if (d)
    wake.expires_after(*d);
  else
    wake.expires_at(asio::steady_timer::time_point::max());
  boost::system::error_code ec;
  co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  auto cs = co_await asio::this_coro::cancellation_state;
  if (cancelled_from_above(cs)) throw boost::system::system_error(asio::error::operation_aborted);
}

}  // namespace quiesce::tasks::pg
