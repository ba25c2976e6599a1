// A long-lived coroutine that runs one operation after another, each of which can be aborted
// alone: a worker runs task after task, and a DELETE ends the one it runs, not the worker.
//
//   auto scope = std::make_shared<abort_scope>(strand);  // the strand the loop runs on
//   co_await scope->run(loop());                           // once: the loop's own coroutine
//   // in loop(), on that strand, for each operation:
//   auto ticket = scope->begin();                          // ticket.request_abort(): any thread
//   co_await operation();                                  // aborted by its ticket alone
//   if (scope->end(ticket))                                // it was: clear the loop's state
//     co_await asio::this_coro::reset_cancellation_state();
//
// A coroutine spawned per operation would do the same at a spawn per task (bench/HISTORY.md:
// "one coroutine per worker"), so a loop is spawned once instead, and an abort reaches the
// loop's own cancellation state, which the loop then makes anew.
#pragma once

#include "lifecycle/own_cancellation.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <atomic>
#include <cstdint>
#include <memory>

namespace quiesce::lifecycle {

class abort_scope : public std::enable_shared_from_this<abort_scope> {
 public:
  explicit abort_scope(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}

  // One operation's handle, for whoever may abort it. Copyable, any thread.
  class ticket {
   public:
    ticket() = default;
    // Terminal cancellation reaches the loop on its executor if this operation is still the one
    // under way; one that ended is not touched, nor the operation after it.
    void request_abort() const;
    bool abort_requested() const;

   private:
    friend class abort_scope;
    ticket(std::shared_ptr<abort_scope> scope, std::uint64_t id)
        : scope_(std::move(scope)), id_(id) {}
    std::shared_ptr<abort_scope> scope_;
    std::uint64_t id_ = 0;
  };

  // Runs `loop` as its own coroutine on the executor. Its cancellation comes from the caller's
  // (forwarded as the caller receives it, and recorded: caller_cancelled()) and from aborts.
  template <typename T>
  boost::asio::awaitable<T> run(boost::asio::awaitable<T> loop) {
    return run_with_own_cancellation(
        executor_, signal_, std::move(loop),
        [this](boost::asio::cancellation_type) { caller_cancelled_ = true; });
  }

  // In the loop, on the executor: the next operation starts. Its ticket may be aborted before
  // the operation is awaited: check abort_requested() first.
  ticket begin();
  // In the loop, on the executor, after the operation: later aborts of it do nothing. True when
  // it was aborted and the caller was not cancelled: the loop must then make its cancellation
  // state anew (`co_await this_coro::reset_cancellation_state()`) before it awaits anything
  // else, or that wait is refused. (A plain function: a coroutine here costs a frame per task.)
  [[nodiscard]] bool end(const ticket& t);
  // Whether the caller's cancellation reached the loop (the deadline, not an abort). On the
  // executor.
  bool caller_cancelled() const { return caller_cancelled_; }

 private:
  void abort(std::uint64_t id);

  boost::asio::any_io_executor executor_;
  boost::asio::cancellation_signal signal_;  // on executor_ only
  bool caller_cancelled_ = false;            // on executor_ only
  std::uint64_t current_ = 0;                // the operation under way (0: none); on executor_
  std::uint64_t started_ = 0;                // on executor_
  std::atomic<std::uint64_t> aborted_{0};    // the last operation whose abort was asked
};

}  // namespace quiesce::lifecycle
