#include "net/ws_wire.hpp"

#include "net/tcp_cork.hpp"
#include "net/ws_frame.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <array>
#include <span>
#include <string>
#include <vector>

namespace quiesce::net {
namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;

namespace {

// What the three loops of one stream tell each other (all on its strand).
struct wire {
  tcp::socket& socket;
  outbox& out;
  const wire_settings& settings;
  wire_handlers& on;
  bool heard = false;       // bytes came since the keepalive last looked
  bool close_sent = false;  // ours is out: the peer's close ends the stream
  bool no_answer = false;   // the peer closed first, or broke the protocol: ours is the last word
};

asio::awaitable<void> wait(tcp::socket& socket, std::chrono::milliseconds d) {
  asio::steady_timer t(socket.get_executor(), d);
  co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

// Ends with the stream: the peer's close (or a broken rule) is answered by the writer, which
// then ends it; this waits meanwhile, bounded by the close timeout.
asio::awaitable<void> answer_and_end(wire& w, websocket::close_reason reason) {
  w.no_answer = true;
  w.out.close(std::move(reason));
  co_await wait(w.socket, w.settings.close_timeout);
}

asio::awaitable<void> read_loop(wire& w) {
  ws::parser parser(w.settings.message_limit);
  std::string in;          // read and not yet parsed; unallocated while the peer is quiet
  std::uint64_t skip = 0;  // the rest of a frame refused by its header, still to come
  for (;;) {
    auto [wec] =
        co_await w.socket.async_wait(tcp::socket::wait_read, asio::as_tuple(asio::use_awaitable));
    if (wec) co_return;
    for (;;) {  // take everything there is, then wait again
      constexpr std::size_t chunk = 4096;
      auto old = in.size();
      in.resize(old + chunk);
      boost::system::error_code ec;
      auto n = w.socket.read_some(asio::buffer(in.data() + old, chunk), ec);
      in.resize(old + n);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec) co_return;  // the peer hung up or reset
      w.heard = true;
      std::size_t used = std::min<std::uint64_t>(skip, in.size());
      skip -= used;
      while (skip == 0) {
        auto p = parser.next(std::string_view(in).substr(used));
        if (p.kind == ws::parsed::need_more) break;
        if (p.consumed > in.size() - used) skip = p.consumed - (in.size() - used);
        used = std::min(in.size(), used + p.consumed);
        switch (p.kind) {
          case ws::parsed::message:
            w.on.message(p.payload);
            break;
          case ws::parsed::ping:
            w.out.pong(p.payload);
            break;
          case ws::parsed::close:
            if (w.close_sent) co_return;  // the answer to ours: done, no need to wait for FIN
            co_await answer_and_end(w, websocket::close_reason(p.code == 1005 ? 0 : p.code));
            co_return;
          case ws::parsed::fail:
            if (p.code == ws::close_protocol_error) {  // the framing is lost: nothing more to read
              co_await answer_and_end(w, websocket::close_reason(p.code));
              co_return;
            }
            w.out.close(websocket::close_reason(p.code));  // then read on, for the peer's answer
            break;
          default:  // a pong, or a fragment kept by the parser
            break;
        }
      }
      in.erase(0, used);
    }
    if (in.empty()) std::string().swap(in);  // give the capacity back while idle (a move would not)
  }
}

asio::awaitable<void> write_loop(wire& w) {
  tcp_cork cork(w.socket);
  outbox::batch b;
  std::vector<ws::header> headers;
  std::vector<asio::const_buffer> buffers;
  std::string close;
  for (;;) {
    co_await w.out.next(b);
    headers.clear();
    buffers.clear();
    headers.reserve(b.frames.size());
    buffers.reserve(1 + 2 * b.frames.size() + 1);
    if (!b.rest.empty()) buffers.push_back(asio::buffer(b.rest));
    if (!b.control.empty()) buffers.push_back(asio::buffer(b.control));
    for (const auto& f : b.frames) {
      headers.push_back(ws::frame_header(ws::opcode::text, f->size()));
      buffers.push_back(asio::buffer(headers.back().bytes.data(), headers.back().size));
      buffers.push_back(asio::buffer(*f));
    }
    if (b.close) {
      auto code = static_cast<std::uint16_t>(b.close->code);
      close = code == 0 ? ws::control_frame(ws::opcode::close, {})
                        : ws::close_frame(code, {b.close->reason.data(), b.close->reason.size()});
      buffers.push_back(asio::buffer(close));
    }
    // More than one system call's worth of buffers: full segments until the last one.
    cork.hold(buffers.size() > 64);
    auto [ec, n] =
        co_await asio::async_write(w.socket, buffers, asio::as_tuple(asio::use_awaitable));
    cork.hold(false);
    if (ec) co_return;
    if (!b.frames.empty()) w.on.sent(b.frames.size());
    if (b.close) {
      w.close_sent = true;
      if (w.no_answer) co_return;
      co_await wait(w.socket, w.settings.close_timeout);  // for the peer's answer (read_loop)
      co_return;
    }
    if (b.frames.capacity() > 256) {  // a burst is over: an idle stream keeps little
      b.frames = {};
      headers = {};
      buffers = {};
    }
  }
}

// The direct path (outbox::end_burst): a burst for a client whose writer is idle goes out from
// the strand at once, 32 frames (64 buffers, one system call's worth) at a time. What the kernel
// does not take is copied, header and all, for the writer; that happens only under backpressure.
void send_now(tcp::socket& socket, std::vector<frame>& frames, std::string& rest,
              wire_handlers& on) {
  constexpr std::size_t per_call = 32;
  std::array<ws::header, per_call> headers;
  std::array<asio::const_buffer, 2 * per_call> buffers;
  tcp_cork cork(socket);
  cork.hold(frames.size() > per_call);
  std::size_t i = 0;
  while (i < frames.size()) {
    std::size_t n = std::min(per_call, frames.size() - i), total = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const auto& f = *frames[i + k];
      headers[k] = ws::frame_header(ws::opcode::text, f.size());
      buffers[2 * k] = asio::buffer(headers[k].bytes.data(), headers[k].size);
      buffers[2 * k + 1] = asio::buffer(f);
      total += headers[k].size + f.size();
    }
    boost::system::error_code ec;
    std::span<const asio::const_buffer> chunk(buffers.data(), 2 * n);
    std::size_t wrote = socket.write_some(chunk, ec);
    if (ec) wrote = 0;  // would_block, or an error the writer will meet again
    if (wrote < total) {
      for (std::size_t k = 0; k < 2 * n; ++k) {
        auto size = buffers[k].size();
        if (wrote >= size) {
          wrote -= size;
          continue;
        }
        rest.append(static_cast<const char*>(buffers[k].data()) + wrote, size - wrote);
        wrote = 0;
      }
      for (std::size_t k = i + n; k < frames.size(); ++k) {
        auto h = ws::frame_header(ws::opcode::text, frames[k]->size());
        rest.append(reinterpret_cast<const char*>(h.bytes.data()), h.size);
        rest.append(*frames[k]);
      }
      break;
    }
    i += n;
  }
  cork.hold(false);
  on.sent(frames.size());
}

// A peer that sent nothing for an interval is pinged; one silent for another is gone.
asio::awaitable<void> keepalive(wire& w) {
  asio::steady_timer timer(w.socket.get_executor());
  bool pinged = false;
  for (;;) {
    timer.expires_after(w.settings.ping_interval);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    if (std::exchange(w.heard, false)) {
      pinged = false;
      continue;
    }
    if (pinged) co_return;
    w.out.ping();
    pinged = true;
  }
}

}  // namespace

asio::awaitable<std::optional<tcp::socket>> accept_upgrade(
    tcp::socket socket, boost::beast::http::request<boost::beast::http::string_body> req,
    std::chrono::milliseconds timeout) {
  websocket::stream<tcp::socket> ws(std::move(socket));
  websocket::stream_base::timeout t{};
  t.handshake_timeout = timeout;
  t.idle_timeout = websocket::stream_base::none();
  ws.set_option(t);
  auto [ec] = co_await ws.async_accept(req, asio::as_tuple(asio::use_awaitable));
  if (ec) co_return std::nullopt;
  co_return std::move(ws.next_layer());
}

asio::awaitable<void> run_wire(tcp::socket& socket, outbox& out, const wire_settings& settings,
                               wire_handlers handlers) {
  socket.non_blocking(true);  // read_loop and send_now take what is there, never wait
  wire w{socket, out, settings, handlers};
  out.send_directly([&socket, &handlers](std::vector<frame>& frames, std::string& rest) {
    send_now(socket, frames, rest, handlers);
  });
  struct stop_direct {
    outbox& out;
    ~stop_direct() { out.send_directly(nullptr); }  // the socket goes with this frame
  } on_exit{out};
  // One group of three rather than `a || b || c`, which nests two groups: every open stream
  // keeps this while it waits, so a group's frames are memory per stream (docs/development.md).
  auto ex = co_await asio::this_coro::executor;
  auto [order, read_error, write_error, keepalive_error] =
      co_await asio::experimental::make_parallel_group(
          asio::co_spawn(ex, read_loop(w), asio::deferred),
          asio::co_spawn(ex, write_loop(w), asio::deferred),
          asio::co_spawn(ex, keepalive(w), asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  // The first to end ends the others; a failure of its own (not their cancellation) goes up.
  const std::exception_ptr* first[] = {&read_error, &write_error, &keepalive_error};
  if (*first[order[0]]) std::rethrow_exception(*first[order[0]]);
}

}  // namespace quiesce::net
