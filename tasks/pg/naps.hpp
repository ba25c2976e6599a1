// The waits the shared store's coroutines share.
#pragma once

#include <boost/asio/awaitable.hpp>
#include "lifecycle/event_count.hpp"

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>

namespace quiesce::tasks::pg {

inline std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()); }

// The wait between attempts at a database that did not answer: 250 ms, doubling up to 5 s, and
// 250 ms again once an attempt succeeds.
class retry_backoff {
 public:
  void succeeded() { next_ = first; }
  // The wait before the next attempt; the one after is twice as long.
  std::chrono::milliseconds failed() {
    auto d = next_;
    next_ = std::min(next_ * 2, last);
    return d;
  }

 private:
  static constexpr std::chrono::milliseconds first{250};
  static constexpr std::chrono::milliseconds last{5000};
  std::chrono::milliseconds next_ = first;
};

// Sleeps until `wake` is notified or `d` has passed (none: until notified); throws when the
// caller is cancelled. The caller and every notify run on one thread (the store's), so a wake
// that came before the nap was looked at by the caller first and is not waited for.
boost::asio::awaitable<void> nap(lifecycle::event_count& wake,
                                 std::optional<std::chrono::milliseconds> d);
// The wait of a retry_backoff before the next attempt at the database; throws when the caller is
// cancelled.
boost::asio::awaitable<void> back_off(std::chrono::milliseconds d);

}  // namespace quiesce::tasks::pg
