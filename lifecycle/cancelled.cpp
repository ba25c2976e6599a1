#include "lifecycle/cancelled.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

namespace quiesce::lifecycle {

boost::asio::awaitable<void> throw_if_cancelled() {
  auto cs = co_await boost::asio::this_coro::cancellation_state;
  if (cancelled(cs)) throw boost::system::system_error(boost::asio::error::operation_aborted);
}

}  // namespace quiesce::lifecycle
