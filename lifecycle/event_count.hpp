// An async "something changed" notification that works across threads (after folly's EventCount):
//   co_await ec.wait_until([&] { return ready(); });   // after each change: ready yet?
// Whoever changes what ready() reads calls notify_all() after the change. The predicate runs on
// the waiter's executor, so what it reads must be safe there (under a lock, or on that strand).
// A waiter must run on a strand (or a one-thread io_context): notify_all() cancels its timer by
// posting there, which is only safe when that post cannot run while the wait is still starting.
#pragma once

#include "lifecycle/adaptive_mutex.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace quiesce::lifecycle {

class event_count {
 public:
  // Completes once `ready()` is true: tested now, then after every notify_all(). Honours the
  // caller's cancellation, as wait() does.
  template <typename Predicate>
  boost::asio::awaitable<void> wait_until(Predicate ready) {
    for (;;) {
      auto key = prepare_wait();
      if (ready()) co_return;
      co_await wait(key);
    }
  }

  // The two halves of wait_until, for a waiter that acts on what it finds: a notify between
  // prepare_wait() and wait() is never lost (wait() then returns at once).
  std::uint64_t prepare_wait() const;
  // Suspends until notify_all() is called after `key` was taken. Honours the caller's
  // cancellation: throws boost::system::system_error(operation_aborted) when cancelled.
  boost::asio::awaitable<void> wait(std::uint64_t key);
  void notify_all();
  // Wakes one waiter (the latest to wait), and every waiter still between prepare_wait() and
  // wait(). For a change only one waiter can act on, such as one more queued task: waking every
  // idle worker for it cost each of them a wake-up that found nothing.
  void notify_one();

 private:
  mutable adaptive_mutex mutex_;
  std::uint64_t epoch_ = 0;
  // Each waiter owns a timer that never expires; notify cancels it on the waiter's executor.
  std::vector<std::shared_ptr<boost::asio::steady_timer>> waiters_;
};

}  // namespace quiesce::lifecycle
