#include "net/ws_wire.hpp"

#include "net/ws_frame.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <array>
#include <span>
#include <string>
#include <vector>

#include <sys/socket.h>

namespace quiesce::net {
namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;

namespace {

// One text frame as two buffers: its header, kept in `h`, and the text every client shares.
std::array<asio::const_buffer, 2> text_frame(const std::string& text, ws::header& h) {
  h = ws::frame_header(ws::opcode::text, text.size());
  return {asio::buffer(h.bytes.data(), h.size), asio::buffer(text)};
}

// Asio hands at most this many buffers to one writev.
constexpr std::size_t buffers_per_call = 64;

// A send that more of the batch follows (or our FIN) asks the kernel to hold a partial segment
// for it: full segments instead of one per system call with TCP_NODELAY on (on loopback the
// receiver's work for each segment is charged to the sender's CPU). Linux; elsewhere 0.
#ifdef MSG_MORE
constexpr int more_follows = MSG_MORE;
#else
constexpr int more_follows = 0;
#endif

}  // namespace

ws_wire::ws_wire(tcp::socket socket, outbox& out, const wire_settings& settings, wire_handlers on)
    : socket_(std::move(socket)),
      out_(out),
      settings_(settings),
      on_(std::move(on)),
      timer_(socket_.get_executor()),
      parser_(settings.message_limit) {}

void ws_wire::start(std::unique_ptr<detail::wire_done> done, asio::cancellation_slot slot) {
  done_ = std::move(done);
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);  // reads and first writes take what is there, never wait
  if (slot.is_connected()) {
    slot_ = slot;
    slot_.assign([this](asio::cancellation_type) { end(); });
  }
  out_.on_ready([this] { guarded([this] { write_more(); }); });
  wait_readable();
  arm(settings_.ping_interval);
  // The first frames go out from a handler: an operation never completes inside its start.
  asio::post(socket_.get_executor(),
             [this, p = pending(*this)] { guarded([this] { write_more(); }); });
  if (ec) end();
}

// A handler's work; what it throws ends the stream and goes to the caller.
template <class F>
void ws_wire::guarded(F&& f) {
  try {
    f();
  } catch (...) {
    if (!error_) error_ = std::current_exception();
    end();
  }
}

// Every handler of ours ends here (its `pending` goes). The last after the end completes the
// caller's operation, and touches nothing of the wire after that: its owner may destroy it.
void ws_wire::release() {
  if (--pending_ > 0 || !ended()) return;
  out_.on_ready(nullptr);
  if (slot_.is_connected()) slot_.clear();
  boost::system::error_code ignored;
  socket_.close(ignored);  // before the caller goes on
  auto done = std::move(done_);
  done->complete(error_);
}

// Stops everything now; the handlers still to come see the end and do nothing.
void ws_wire::end() {
  if (std::exchange(phase_, phase::ended) == phase::ended) return;
  boost::system::error_code ignored;
  socket_.close(ignored);  // the read wait and a write in progress complete, cancelled
  timer_.cancel();
}

// Read: wait for readability, then take everything there is.
void ws_wire::wait_readable() {
  socket_.async_wait(tcp::socket::wait_read,
                     [this, p = pending(*this)](boost::system::error_code ec) {
                       if (ec)
                         end();
                       else if (!ended())
                         guarded([this] { on_readable(); });
                     });
}

void ws_wire::on_readable() {
  websocket::close_reason answer;
  switch (take_readable(answer)) {
    case after_read::wait:
      wait_readable();
      break;
    case after_read::end:
      end();
      break;
    case after_read::answer:  // the writer answers, then ends the stream; bounded meanwhile
      phase_ = phase::answering;
      out_.close(std::move(answer));
      arm(settings_.close_timeout);
      break;
  }
}

void ws_wire::arm(std::chrono::milliseconds d) {
  if (ended()) return;
  timer_.expires_after(d);  // a wait already pending completes cancelled
  timer_.async_wait(
      [this, p = pending(*this), generation = ++timer_generation_](boost::system::error_code ec) {
        if (!ec && !ended() && generation == timer_generation_) guarded([this] { on_timer(); });
      });
}

// A peer that sent nothing for an interval is pinged; one silent for another is gone. Past the
// open phase the timer bounds the close handshake.
void ws_wire::on_timer() {
  if (phase_ != phase::open) return end();  // no answer to the close in time
  switch (keepalive_) {
    case keepalive::heard:
      keepalive_ = keepalive::quiet;
      break;
    case keepalive::pinged:
      return end();
    case keepalive::quiet:
      keepalive_ = keepalive::pinged;
      out_.ping();
      break;
  }
  arm(settings_.ping_interval);
}

ws_wire::after_read ws_wire::take_readable(websocket::close_reason& answer) {
  thread_local std::array<char, 16384> scratch;
  while (!ended()) {
    boost::system::error_code ec;
    auto n = socket_.read_some(asio::buffer(scratch), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return after_read::wait;
    if (ec) return after_read::end;  // the peer hung up or reset
    keepalive_ = keepalive::heard;
    std::string_view data(scratch.data(), n);
    auto skipped = std::min<std::uint64_t>(skip_, data.size());
    data.remove_prefix(skipped);
    skip_ -= skipped;
    if (!in_.empty()) {
      in_.append(data);
      data = in_;
    }
    std::size_t used = 0;
    while (skip_ == 0 && !ended()) {
      auto p = parser_.next(data.substr(used));
      if (p.kind == ws::parsed::need_more) break;
      if (p.consumed > data.size() - used) skip_ = p.consumed - (data.size() - used);
      used = std::min(data.size(), used + p.consumed);
      switch (p.kind) {
        case ws::parsed::message:
          on_.message(p.payload);
          break;
        case ws::parsed::ping:
          out_.pong(p.payload);
          break;
        case ws::parsed::close:
          if (phase_ == phase::closing) return after_read::end;  // the answer to ours: no FIN wait
          answer = websocket::close_reason(p.code == 1005 ? 0 : p.code);
          return after_read::answer;
        case ws::parsed::fail:
          answer = websocket::close_reason(p.code);
          if (p.consumed == 0) return after_read::answer;  // nothing more can be read
          out_.close(answer);  // then read on past the bad frame, for the peer's answer
          break;
        default:  // a pong, or a fragment kept by the parser
          break;
      }
    }
    if (data.data() == in_.data()) {
      in_.erase(0, used);
      if (in_.empty()) std::string().swap(in_);  // give the capacity back (a move would not)
    } else {
      in_.assign(data.substr(used));
    }
  }
  return after_read::end;
}

void ws_wire::write_more() {
  while (!write_waits_ && !ended() && out_.ready()) {
    out_.take(batch_);
    auto& b = batch_;
    buffers_.clear();
    buffers_.reserve(1 + 2 * b.frames.size() + 1);
    if (!b.control.empty()) buffers_.emplace_back(asio::buffer(b.control));
    headers_.resize(b.frames.size());
    for (std::size_t k = 0; k < b.frames.size(); ++k) {
      const auto& q = b.frames[k];
      if (q.framed)
        buffers_.emplace_back(asio::buffer(*q.bytes));
      else
        for (auto part : text_frame(*q.bytes, headers_[k])) buffers_.push_back(part);
    }
    if (b.close) {
      auto code = static_cast<std::uint16_t>(b.close->code);
      close_frame_ = code == 0
                         ? ws::control_frame(ws::opcode::close, {})
                         : ws::close_frame(code, {b.close->reason.data(), b.close->reason.size()});
      buffers_.emplace_back(asio::buffer(close_frame_));
    }
    first_ = 0;
    if (!send_batch() || !written()) return;
  }
}

bool ws_wire::send_batch() {
  boost::system::error_code ec;
  while (first_ < buffers_.size()) {
    std::span<const asio::const_buffer> chunk(buffers_.data() + first_,
                                              std::min(buffers_per_call, buffers_.size() - first_));
    // Held back while more of the batch follows; a close is held until written() sends our
    // FIN, so that goes in its segment.
    const bool last = first_ + chunk.size() == buffers_.size();
    const int flags = last && !batch_.close ? 0 : more_follows;
    std::size_t offered = asio::buffer_size(chunk);
    std::size_t n = socket_.send(chunk, flags, ec);
    if (ec) break;
    std::size_t left = n;  // past every buffer that went whole (empty ones too)
    while (first_ < buffers_.size() && left >= buffers_[first_].size())
      left -= buffers_[first_++].size();
    if (left > 0) buffers_[first_] += left;  // the start of this one went
    if (n < offered) break;                  // the kernel's buffer is full
  }
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
    end();
    return false;
  }
  if (first_ == buffers_.size()) return true;
  // The rest when there is room: a wait, not a write the kernel would refuse again now.
  write_waits_ = true;
  socket_.async_wait(tcp::socket::wait_write,
                     [this, p = pending(*this)](boost::system::error_code ec) {
                       write_waits_ = false;
                       if (ec)
                         end();
                       else if (!ended())
                         guarded([this] {
                           if (send_batch() && written()) write_more();
                         });
                     });
  return false;
}

bool ws_wire::written() {
  auto& b = batch_;
  if (!b.frames.empty()) {
    std::size_t frames = 0;
    for (const auto& q : b.frames) frames += q.frames;
    on_.sent(frames);
  }
  if (b.close) {
    // Nothing follows our close, so our FIN goes now, in the close frame's segment (held back by
    // more_follows): the server closes TCP first (RFC 6455, 7.1.1) with no segment of its own for
    // the FIN after the peer's answer. Reading stays open for that answer.
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    if (phase_ == phase::answering) {
      end();
    } else {
      phase_ = phase::closing;  // for the peer's answer, which the reader sees
      arm(settings_.close_timeout);
    }
    return false;
  }
  if (b.frames.capacity() > 256) {  // a burst is over: an idle stream keeps little
    b.frames = {};
    headers_ = {};
    buffers_ = {};
  } else {
    b.frames.clear();  // the texts are not held past their write
  }
  return true;
}

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

}  // namespace quiesce::net
