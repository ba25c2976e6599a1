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

// One stream's wire. It owns itself: every handler it has started is counted in `pending_`, and
// once it has ended and the last of them has run, it deletes itself (closing the socket) and
// then completes the caller's operation. Every member function runs on the socket's strand.
class wire {
 public:
  wire(tcp::socket& socket, outbox& out, const wire_settings& settings, wire_handlers on,
       std::unique_ptr<detail::wire_done> done)
      : socket_(std::move(socket)),
        out_(out),
        settings_(settings),
        on_(std::move(on)),
        done_(std::move(done)),
        timer_(socket_.get_executor()),
        parser_(settings.message_limit) {}

  void start(asio::cancellation_slot slot) {
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
    ++pending_;
    asio::post(socket_.get_executor(), [this] {
      guarded([this] { write_more(); });
      release();
    });
    if (ec) end();
  }

 private:
  enum class after_read { wait, end, answer };

  // A handler's work; what it throws ends the stream and goes to the caller.
  template <class F>
  void guarded(F&& f) {
    try {
      f();
    } catch (...) {
      if (!error_) error_ = std::current_exception();
      end();
    }
  }

  // Every handler of ours ends here.
  void release() {
    if (--pending_ > 0 || !ended_) return;
    out_.on_ready(nullptr);
    if (slot_.is_connected()) slot_.clear();
    auto done = std::move(done_);
    auto error = error_;
    delete this;  // the socket closes here, before the caller goes on
    done->complete(error);
  }

  // Stops everything now; the handlers still to come see `ended_` and do nothing.
  void end() {
    if (std::exchange(ended_, true)) return;
    boost::system::error_code ignored;
    socket_.close(ignored);  // the read wait and a write in progress complete, cancelled
    timer_.cancel();
  }

  // Read: wait for readability, then take everything there is.
  void wait_readable() {
    ++pending_;
    socket_.async_wait(tcp::socket::wait_read, [this](boost::system::error_code ec) {
      if (ec)
        end();
      else if (!ended_)
        guarded([this] { on_readable(); });
      release();
    });
  }

  void on_readable() {
    websocket::close_reason answer;
    switch (take_readable(answer)) {
      case after_read::wait:
        wait_readable();
        break;
      case after_read::end:
        end();
        break;
      case after_read::answer:  // the writer answers, then ends the stream; bounded meanwhile
        no_answer_ = true;
        out_.close(std::move(answer));
        if (!ended_) await_close();
        break;
    }
  }

  // Reads everything the socket has and handles each whole frame. It never suspends, so what
  // it reads can go to the thread's scratch buffer: only the start of an unfinished frame is
  // kept.
  after_read take_readable(websocket::close_reason& answer);

  // Write: everything the outbox holds, at once, as far as the kernel takes it; the rest once
  // the socket is writable again, after which the outbox is looked at again.
  void write_more();
  // Sends what the kernel takes of the batch from `first_` on; false if the rest waits for
  // room (a write wait is pending) or the stream ended.
  bool send_batch();
  // After a batch is wholly out; false when it was the close.
  bool written();

  // The one timer: keepalive while open, then the close handshake's bound.
  void arm(std::chrono::milliseconds d) {
    if (ended_) return;
    timer_.expires_after(d);  // a wait already pending completes cancelled
    ++pending_;
    timer_.async_wait([this, generation = ++timer_generation_](boost::system::error_code ec) {
      if (!ec && !ended_ && generation == timer_generation_) guarded([this] { on_timer(); });
      release();
    });
  }
  void await_close() {
    closing_ = true;
    arm(settings_.close_timeout);
  }
  // A peer that sent nothing for an interval is pinged; one silent for another is gone.
  void on_timer() {
    if (closing_) return end();  // no answer to the close in time
    if (std::exchange(heard_, false))
      pinged_ = false;
    else if (pinged_)
      return end();
    else {
      pinged_ = true;
      out_.ping();
    }
    arm(settings_.ping_interval);
  }

  tcp::socket socket_;
  outbox& out_;
  const wire_settings settings_;
  wire_handlers on_;
  std::unique_ptr<detail::wire_done> done_;
  asio::cancellation_slot slot_;
  asio::steady_timer timer_;
  unsigned timer_generation_ = 0;  // a wait that was replaced does nothing when it completes
  std::exception_ptr error_;

  ws::parser parser_;
  std::string in_;          // the start of a frame not yet whole; unallocated while quiet
  std::uint64_t skip_ = 0;  // the rest of a frame refused by its header, still to come

  outbox::batch batch_;  // what is being written
  std::vector<ws::header> headers_;
  std::vector<asio::const_buffer> buffers_;
  std::size_t first_ = 0;  // buffers_ before it have gone whole
  std::string close_frame_;

  int pending_ = 0;
  bool ended_ = false;
  bool writing_ = false;     // the batch's rest waits for room
  bool heard_ = false;       // bytes came since the keepalive last looked
  bool pinged_ = false;      // our ping is unanswered
  bool closing_ = false;     // the timer bounds the close handshake now
  bool close_sent_ = false;  // ours is out: the peer's close ends the stream
  bool no_answer_ = false;   // the peer closed first, or broke the protocol: ours is the last word
};

wire::after_read wire::take_readable(websocket::close_reason& answer) {
  thread_local std::array<char, 16384> scratch;
  while (!ended_) {
    boost::system::error_code ec;
    auto n = socket_.read_some(asio::buffer(scratch), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return after_read::wait;
    if (ec) return after_read::end;  // the peer hung up or reset
    heard_ = true;
    std::string_view data(scratch.data(), n);
    auto skipped = std::min<std::uint64_t>(skip_, data.size());
    data.remove_prefix(skipped);
    skip_ -= skipped;
    if (!in_.empty()) {
      in_.append(data);
      data = in_;
    }
    std::size_t used = 0;
    while (skip_ == 0 && !ended_) {
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
          if (close_sent_) return after_read::end;  // the answer to ours: no wait for FIN
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

void wire::write_more() {
  while (!writing_ && !ended_ && out_.ready()) {
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

bool wire::send_batch() {
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
  writing_ = true;
  ++pending_;
  socket_.async_wait(tcp::socket::wait_write, [this](boost::system::error_code ec) {
    writing_ = false;
    if (ec)
      end();
    else if (!ended_)
      guarded([this] {
        if (send_batch() && written()) write_more();
      });
    release();
  });
  return false;
}

bool wire::written() {
  auto& b = batch_;
  if (!b.frames.empty()) {
    std::size_t frames = 0;
    for (const auto& q : b.frames) frames += q.frames;
    on_.sent(frames);
  }
  if (b.close) {
    close_sent_ = true;
    // Nothing follows our close, so our FIN goes now, in the close frame's segment (held back by
    // more_follows): the server closes TCP first (RFC 6455, 7.1.1) with no segment of its own for
    // the FIN after the peer's answer. Reading stays open for that answer.
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    if (no_answer_)
      end();
    else
      await_close();  // for the peer's answer, which the reader sees
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

namespace detail {

void start_wire(tcp::socket& socket, outbox& out, const wire_settings& settings,
                wire_handlers handlers, std::unique_ptr<wire_done> done,
                asio::cancellation_slot slot) {
  // It deletes itself once it has ended and its last handler has run (wire::release).
  auto* w = new wire(socket, out, settings, std::move(handlers), std::move(done));
  w->start(slot);
}

}  // namespace detail
}  // namespace quiesce::net
