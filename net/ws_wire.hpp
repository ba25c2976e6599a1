// An accepted stream on the wire: every byte after the handshake, both ways, on one strand.
// Beast accepts the upgrade; from then on this owns the socket, so that whatever waits for a
// client goes out in one gather write (a pong or ping, every queued frame, the close), the
// frames' bytes shared by all clients and only a header per write. A write is tried at once,
// from the strand that queued it; only what the kernel does not take waits for room.
// While idle it holds no read buffer: it waits for readability first. It answers pings, pings
// a silent peer and drops one that stays silent, and ends the close handshake as soon as the
// peer answers.
//
// The wire is one object driven by completion handlers, not coroutines: an open stream keeps a
// read wait and a timer, not three coroutine frames and a parallel group (docs/development.md).
#pragma once

#include "net/outbox.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/prepend.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

namespace quiesce::net {

struct wire_settings {
  std::size_t message_limit{};  // largest message a client may send; past it: close 1009
  std::chrono::milliseconds ping_interval{};  // a peer silent for two of these is dropped
  std::chrono::milliseconds close_timeout{};  // how long a close waits for its answer
};

struct wire_handlers {
  std::function<void(std::string_view)> message;  // a whole text or binary message
  std::function<void(std::size_t)> sent;          // this many frames of the outbox are out
};

// Beast checks the upgrade in `req` and writes the 101; the socket comes back to be run here,
// with nothing of the handshake (its buffers and timers) left behind. Empty if it failed.
boost::asio::awaitable<std::optional<boost::asio::ip::tcp::socket>> accept_upgrade(
    boost::asio::ip::tcp::socket socket,
    boost::beast::http::request<boost::beast::http::string_body> req,
    std::chrono::milliseconds timeout);

namespace detail {

// The caller's completion handler, whatever its type, behind one virtual call.
class wire_done {
 public:
  virtual ~wire_done() = default;
  virtual void complete(std::exception_ptr e) = 0;
};

template <class Handler>
class wire_done_for final : public wire_done {
 public:
  wire_done_for(Handler h, boost::asio::any_io_executor fallback)
      : handler_(std::move(h)), fallback_(std::move(fallback)) {}
  // Inline when the wire's strand is the handler's executor (a coroutine on the stream's strand).
  void complete(std::exception_ptr e) override {
    auto ex = boost::asio::get_associated_executor(handler_, fallback_);
    boost::asio::dispatch(ex, boost::asio::prepend(std::move(handler_), std::move(e)));
  }

 private:
  Handler handler_;
  boost::asio::any_io_executor fallback_;
};

void start_wire(boost::asio::ip::tcp::socket& socket, outbox& out, const wire_settings& settings,
                wire_handlers handlers, std::unique_ptr<wire_done> done,
                boost::asio::cancellation_slot slot);

}  // namespace detail

// Takes the socket and sends what `out` holds and reads what the peer sends, until the close
// handshake ends (after the outbox's close, or the peer's), the peer goes away or breaks the
// protocol, or the operation is cancelled (any type: the stream ends). Completes once every
// handler of the wire has run and the socket is closed, with the exception a handler threw.
// `socket` and `out` must outlive the operation; the settings and handlers are its own.
template <class Token>
auto async_run_wire(boost::asio::ip::tcp::socket& socket, outbox& out, wire_settings settings,
                    wire_handlers handlers, Token&& token) {
  return boost::asio::async_initiate<Token, void(std::exception_ptr)>(
      [&socket, &out, settings, handlers = std::move(handlers)](auto handler) mutable {
        auto slot = boost::asio::get_associated_cancellation_slot(handler);
        auto ex = socket.get_executor();
        detail::start_wire(
            socket, out, settings, std::move(handlers),
            std::make_unique<detail::wire_done_for<decltype(handler)>>(std::move(handler), ex),
            slot);
      },
      token);
}

}  // namespace quiesce::net
