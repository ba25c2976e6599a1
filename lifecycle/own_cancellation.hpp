// What abort_scope runs its loop with: an operation run as its own coroutine whose
// cancellation comes from a signal of the owner's, into which the caller's is forwarded.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace quiesce::lifecycle {

// Runs `op` on `executor`, cancelled through `signal`. The caller's cancellation, as the caller
// receives it, is passed to `heard(type)` and then emitted on `signal`; the caller's own state
// records only its own. `signal` is touched on `executor` only.
template <typename T, typename Heard>
boost::asio::awaitable<T> run_with_own_cancellation(boost::asio::any_io_executor executor,
                                                    boost::asio::cancellation_signal& signal,
                                                    boost::asio::awaitable<T> op, Heard heard) {
  namespace asio = boost::asio;
  asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
  auto caller = state.slot();
  // `op` listens on `signal`, so the caller's slot is free for the forwarding handler.
  if (caller.is_connected())
    caller.assign([&signal, heard](asio::cancellation_type type) mutable {
      heard(type);
      signal.emit(type);
    });
  // Neither slot may keep a handler that points at an operation that has ended.
  struct detach_on_exit {
    asio::cancellation_slot caller;
    asio::cancellation_signal& signal;
    ~detach_on_exit() {
      if (caller.is_connected()) caller.clear();
      signal.slot().clear();
    }
  } guard{caller, signal};
  co_return co_await asio::co_spawn(
      executor, std::move(op), asio::bind_cancellation_slot(signal.slot(), asio::use_awaitable));
}

}  // namespace quiesce::lifecycle
