// One operation's own cancellation, beside its caller's: a DELETE ends one running task while the
// deadline ends them all through the tree (Seastar's abort_source, in Asio's terms).
//
//   auto abort = std::make_shared<abort_source>(strand);   // the strand the caller runs on
//   auto r = co_await abort->run(work());                   // on that strand
//   abort->request_abort();                                 // from any thread
// For a loop of operations (a worker's tasks), abort_scope spawns one coroutine for them all.
#pragma once

#include "lifecycle/own_cancellation.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <memory>

namespace quiesce::lifecycle {

class abort_source : public std::enable_shared_from_this<abort_source> {
 public:
  explicit abort_source(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}

  // Any thread, any time: the operation run() runs gets terminal cancellation on its executor;
  // one not yet started does not start. After it ended, nothing happens.
  void request_abort();
  bool abort_requested() const { return requested_.load(std::memory_order_acquire); }

  // Runs `op` as its own coroutine on the executor. It is cancelled by request_abort() or by the
  // caller's cancellation (forwarded as the caller receives it); the caller's state records only
  // its own, so afterwards the two are told apart. Throws operation_aborted if already aborted.
  template <typename T>
  boost::asio::awaitable<T> run(boost::asio::awaitable<T> op) {
    if (abort_requested()) throw boost::system::system_error(boost::asio::error::operation_aborted);
    return run_with_own_cancellation(executor_, signal_, std::move(op),
                                     [](boost::asio::cancellation_type) {});
  }

 private:
  boost::asio::any_io_executor executor_;
  boost::asio::cancellation_signal signal_;  // touched on executor_ only
  std::atomic<bool> requested_{false};
};

}  // namespace quiesce::lifecycle
