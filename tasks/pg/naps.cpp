#include "tasks/pg/naps.hpp"

#include "lifecycle/cancelled.hpp"

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
  co_await lifecycle::throw_if_cancelled();
}

}  // namespace quiesce::tasks::pg
