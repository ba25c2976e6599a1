// The waits the shared store's coroutines share.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

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

// Sleeps (none: until woken), or returns early when `wake` is cancelled; throws when the caller
// is cancelled.
boost::asio::awaitable<void> nap(boost::asio::steady_timer& wake,
                                 std::optional<std::chrono::milliseconds> d);

}  // namespace quiesce::tasks::pg
