// An async "something changed" notification that works across threads (after folly's EventCount):
//   co_await ec.wait_until([&] { return ready(); });   // after each change: ready yet?
// Whoever changes what ready() reads calls notify_all() after the change. The predicate runs on
// the waiter's executor, so what it reads must be safe there (under a lock, or on that strand).
// A waiter must run on a strand (or a one-thread io_context): notify_all() resumes it by posting
// there, and its cancellation handler runs there too. A suspended waiter is held by the
// event_count and listed with its io_context: the context's shutdown destroys it unrun, as it
// destroys its own pending operations, so a coroutine that holds the event_count it waits on is
// not leaked, and a later notify finds nothing to resume.
#pragma once

#include "lifecycle/cancelled.hpp"
#include "support/adaptive_mutex.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/intrusive/list_hook.hpp>
#include <boost/system/error_code.hpp>

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
      co_await throw_if_cancelled();  // woken and cancelled at once: cancelled wins
    }
  }

  // The two halves of wait_until, for a waiter that acts on what it finds: a notify between
  // prepare_wait() and wait() is never lost (wait() then completes without waiting).
  std::uint64_t prepare_wait() const;
  // Suspends until notify_all() is called after `key` was taken. Honours the caller's
  // cancellation: throws boost::system::system_error(operation_aborted) when cancelled while it
  // waits.
  boost::asio::awaitable<void> wait(std::uint64_t key);
  void notify_all();
  // Wakes one waiter (the latest to wait), and every waiter still between prepare_wait() and
  // wait(). For a change only one waiter can act on, such as one more queued task: waking every
  // idle worker for it cost each of them a wake-up that found nothing.
  void notify_one();

 private:
  // A suspended wait: its completion handler, resumed on its own executor by whoever takes it
  // out of waiters_ (a notify, or its cancellation), or destroyed unrun by its context's
  // shutdown. A timer per wait did the same at the cost of a timer object, the reactor's timer
  // queue and one more trip through the event loop.
  struct parking;
  class parking_service;
  struct waiter : std::enable_shared_from_this<waiter> {
    boost::asio::any_io_executor executor;
    boost::asio::cancellation_slot slot;  // cleared before the handler runs or goes
    std::shared_ptr<parking> parked_at;   // its context's list of suspended waiters
    using hook = boost::intrusive::list_member_hook<
        boost::intrusive::link_mode<boost::intrusive::safe_link>>;
    hook listed;  // in that list, under its mutex
    virtual ~waiter();
    virtual void complete(boost::system::error_code ec) = 0;  // on executor
    virtual void abandon() = 0;  // destroys the handler unrun: its context is shutting down
  };
  template <typename Handler>
  struct waiter_for;
  template <typename Handler>
  void start_wait(std::uint64_t key, Handler handler);
  std::shared_ptr<waiter> take(const waiter* w);  // null if a notify or a cancel took it first
  // False (and nothing posted) if its context has shut down.
  static bool resume(std::shared_ptr<waiter> w, boost::system::error_code ec);

  mutable support::adaptive_mutex mutex_;
  std::uint64_t epoch_ = 0;
  std::vector<std::shared_ptr<waiter>> waiters_;
};

}  // namespace quiesce::lifecycle
