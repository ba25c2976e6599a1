// An async "something changed" notification that works across threads (after folly's EventCount):
//   for (;;) { auto key = ec.prepare_wait(); if (ready()) break; co_await ec.wait(key); }
// A notify between prepare_wait() and wait() is never lost: wait() then returns at once.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace quiesce::lifecycle {

class event_count {
 public:
  std::uint64_t prepare_wait() const;
  // Suspends until notify_all() is called after `key` was taken. Honours the caller's
  // cancellation: throws boost::system::system_error(operation_aborted) when cancelled.
  boost::asio::awaitable<void> wait(std::uint64_t key);
  void notify_all();

 private:
  mutable std::mutex mutex_;
  std::uint64_t epoch_ = 0;
  // Each waiter owns a timer that never expires; notify cancels it on the waiter's executor.
  std::vector<std::shared_ptr<boost::asio::steady_timer>> waiters_;
};

}  // namespace quiesce::lifecycle
