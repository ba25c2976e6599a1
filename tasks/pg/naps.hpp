// The waits the shared store's coroutines share.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace quiesce::tasks::pg {

inline std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()); }

inline bool cancelled_from_above(const boost::asio::cancellation_state& cs) {
  return cs.cancelled() != boost::asio::cancellation_type::none;
}

// Sleeps (none: until woken), or returns early when `wake` is cancelled; throws when the caller
// is cancelled.
boost::asio::awaitable<void> nap(boost::asio::steady_timer& wake,
                                 std::optional<std::chrono::milliseconds> d);

}  // namespace quiesce::tasks::pg
