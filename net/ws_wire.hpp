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
#include "net/ws_frame.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/prepend.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

}  // namespace detail

// One stream's wire, owned by whoever runs it (the stream session). Every member function runs
// on the socket's strand.
class ws_wire {
 public:
  // `out` must outlive the wire; the settings and handlers are its own.
  ws_wire(boost::asio::ip::tcp::socket socket, outbox& out, const wire_settings& settings,
          wire_handlers on);
  ws_wire(const ws_wire&) = delete;
  ws_wire& operator=(const ws_wire&) = delete;

  // Sends what the outbox holds and reads what the peer sends, until the close handshake ends
  // (after the outbox's close, or the peer's), the peer goes away or breaks the protocol, or the
  // operation is cancelled (any type: the stream ends). Completes once every handler of the wire
  // has run and the socket is closed, with the exception a handler threw: the owner may then
  // destroy the wire. Once per wire.
  template <class Token>
  auto async_run(Token&& token) {
    return boost::asio::async_initiate<Token, void(std::exception_ptr)>(
        [this](auto handler) {
          auto slot = boost::asio::get_associated_cancellation_slot(handler);
          auto ex = socket_.get_executor();
          start(std::make_unique<detail::wire_done_for<decltype(handler)>>(std::move(handler), ex),
                slot);
        },
        token);
  }

 private:
  // Held by each handler of ours from its start until it has run (or was destroyed unrun): the
  // last to go after the stream ended closes the socket and completes the caller's operation.
  class pending {
   public:
    explicit pending(ws_wire& w) : wire_(&w) { ++w.pending_; }
    pending(pending&& o) noexcept : wire_(std::exchange(o.wire_, nullptr)) {}
    pending& operator=(pending&&) = delete;
    ~pending() {
      if (wire_) wire_->release();
    }

   private:
    ws_wire* wire_;
  };
  // Where the stream is: open (the keepalive runs); answering (the peer closed first or broke
  // the protocol: our close is the last word); closing (ours is out: the peer's answer ends the
  // stream); ended (the handlers still to come do nothing).
  enum class phase { open, answering, closing, ended };
  // Since the keepalive last looked: nothing came, bytes came, or our ping is unanswered.
  enum class keepalive { quiet, heard, pinged };
  enum class after_read { wait, end, answer };

  void start(std::unique_ptr<detail::wire_done> done, boost::asio::cancellation_slot slot);
  template <class F>
  void guarded(F&& f);
  void release();
  void end();
  bool ended() const { return phase_ == phase::ended; }
  void wait_readable();
  void on_readable();
  // Reads everything the socket has and handles each whole frame. It never suspends, so what
  // it reads can go to the thread's scratch buffer: only the start of an unfinished frame is
  // kept.
  after_read take_readable(boost::beast::websocket::close_reason& answer);
  // Write: everything the outbox holds, at once, as far as the kernel takes it; the rest once
  // the socket is writable again, after which the outbox is looked at again.
  void write_more();
  // Sends what the kernel takes of the batch from `first_` on; false if the rest waits for
  // room (a write wait is pending) or the stream ended.
  bool send_batch();
  // After a batch is wholly out; false when it was the close.
  bool written();
  // The one timer: keepalive while open, then the close handshake's bound.
  void arm(std::chrono::milliseconds d);
  void on_timer();

  boost::asio::ip::tcp::socket socket_;
  outbox& out_;
  const wire_settings settings_;
  wire_handlers on_;
  std::unique_ptr<detail::wire_done> done_;
  boost::asio::cancellation_slot slot_;
  boost::asio::steady_timer timer_;
  unsigned timer_generation_ = 0;  // a wait that was replaced does nothing when it completes
  std::exception_ptr error_;

  ws::parser parser_;
  std::string in_;          // the start of a frame not yet whole; unallocated while quiet
  std::uint64_t skip_ = 0;  // the rest of a frame refused by its header, still to come

  outbox::batch batch_;  // what is being written
  std::vector<ws::header> headers_;
  std::vector<boost::asio::const_buffer> buffers_;
  std::size_t first_ = 0;  // buffers_ before it have gone whole
  std::string close_frame_;

  int pending_ = 0;
  phase phase_ = phase::open;
  keepalive keepalive_ = keepalive::quiet;
  bool write_waits_ = false;  // the batch's rest waits for room
};

}  // namespace quiesce::net
