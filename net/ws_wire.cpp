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

struct reader {
  explicit reader(std::size_t limit) : parser(limit) {}
  ws::parser parser;
  std::string in;          // the start of a frame not yet whole; unallocated while quiet
  std::uint64_t skip = 0;  // the rest of a frame refused by its header, still to come
};

enum class after_read { wait, end, answer };

// One text frame as two buffers: its header, kept in `h`, and the text every client shares.
std::array<asio::const_buffer, 2> text_frame(const std::string& text, ws::header& h) {
  h = ws::frame_header(ws::opcode::text, text.size());
  return {asio::buffer(h.bytes.data(), h.size), asio::buffer(text)};
}

// Reads everything the socket has and handles each whole frame. It never suspends, so what it
// reads can go to the thread's scratch buffer: only the start of an unfinished frame is kept.
after_read take_readable(wire& w, reader& r, websocket::close_reason& answer) {
  thread_local std::array<char, 16384> scratch;
  for (;;) {
    boost::system::error_code ec;
    auto n = w.socket.read_some(asio::buffer(scratch), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return after_read::wait;
    if (ec) return after_read::end;  // the peer hung up or reset
    w.heard = true;
    std::string_view data(scratch.data(), n);
    auto skipped = std::min<std::uint64_t>(r.skip, data.size());
    data.remove_prefix(skipped);
    r.skip -= skipped;
    if (!r.in.empty()) {
      r.in.append(data);
      data = r.in;
    }
    std::size_t used = 0;
    while (r.skip == 0) {
      auto p = r.parser.next(data.substr(used));
      if (p.kind == ws::parsed::need_more) break;
      if (p.consumed > data.size() - used) r.skip = p.consumed - (data.size() - used);
      used = std::min(data.size(), used + p.consumed);
      switch (p.kind) {
        case ws::parsed::message:
          w.on.message(p.payload);
          break;
        case ws::parsed::ping:
          w.out.pong(p.payload);
          break;
        case ws::parsed::close:
          if (w.close_sent) return after_read::end;  // the answer to ours: no wait for FIN
          answer = websocket::close_reason(p.code == 1005 ? 0 : p.code);
          return after_read::answer;
        case ws::parsed::fail:
          answer = websocket::close_reason(p.code);
          if (p.consumed == 0) return after_read::answer;  // nothing more can be read
          w.out.close(answer);  // then read on past the bad frame, for the peer's answer
          break;
        default:  // a pong, or a fragment kept by the parser
          break;
      }
    }
    if (data.data() == r.in.data()) {
      r.in.erase(0, used);
      if (r.in.empty()) std::string().swap(r.in);  // give the capacity back (a move would not)
    } else {
      r.in.assign(data.substr(used));
    }
  }
}

asio::awaitable<void> read_loop(wire& w) {
  reader r(w.settings.message_limit);
  websocket::close_reason answer;
  for (;;) {
    auto [ec] =
        co_await w.socket.async_wait(tcp::socket::wait_read, asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    auto next = take_readable(w, r, answer);
    if (next == after_read::end) co_return;
    if (next == after_read::answer) {
      co_await answer_and_end(w, answer);
      co_return;
    }
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
    buffers.clear();
    buffers.reserve(1 + 2 * b.frames.size() + 1);
    if (!b.rest.empty()) buffers.emplace_back(asio::buffer(b.rest));
    if (!b.control.empty()) buffers.emplace_back(asio::buffer(b.control));
    headers.resize(b.frames.size());
    for (std::size_t k = 0; k < b.frames.size(); ++k)
      for (auto part : text_frame(*b.frames[k], headers[k])) buffers.push_back(part);
    if (b.close) {
      auto code = static_cast<std::uint16_t>(b.close->code);
      close = code == 0 ? ws::control_frame(ws::opcode::close, {})
                        : ws::close_frame(code, {b.close->reason.data(), b.close->reason.size()});
      buffers.emplace_back(asio::buffer(close));
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
      auto [head, text] = text_frame(*frames[i + k], headers[k]);
      buffers[2 * k] = head;
      buffers[2 * k + 1] = text;
      total += head.size() + text.size();
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
      ws::header h;
      for (std::size_t k = i + n; k < frames.size(); ++k)
        for (auto part : text_frame(*frames[k], h))
          rest.append(static_cast<const char*>(part.data()), part.size());
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
