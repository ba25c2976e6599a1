// "Was this coroutine cancelled?", asked one way everywhere: after an operation that completes
// without an error when cancelled (a timer waited on with as_tuple, a chunk on the CPU pool).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>

namespace quiesce::lifecycle {

// Any type the coroutine's state lets through counts (by default only terminal).
inline bool cancelled(const boost::asio::cancellation_state& cs) {
  return cs.cancelled() != boost::asio::cancellation_type::none;
}

// Throws boost::system::system_error(operation_aborted) if the calling coroutine was cancelled.
boost::asio::awaitable<void> throw_if_cancelled();

}  // namespace quiesce::lifecycle
