// One subscriber of quiesce-wsload, on a plain socket: the upgrade written by hand, server frames
// parsed in place, a ping or a close answered. Beast's client cost the load client about 37 us of
// CPU per stream closed in a drain, with its one thread busy for as long as the server was
// (bench/HISTORY.md): a figure that measured the client. This one does what a subscriber must and
// nothing else, for quiesce and its peers alike (no deflate, no fragments sent, frames from a
// server are unmasked).
#include "wsload_clients.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace wsload {
namespace {

// The upgrade: the key is fixed and the server's accept key is not checked (the 101 is).
std::string upgrade_request(int index) {
  return "GET /ws/load" + std::to_string(index) +
         " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

// A control frame to the server: masked, as a client's must be (a zero key leaves the payload as
// it is); a control frame's payload is at most 125 bytes. net/ws_frame writes and parses the
// server's side of the framing; the load client keeps its own, so it does not share the server's
// mistakes.
std::string masked_control_frame(unsigned opcode, std::string_view payload) {
  std::string f;
  f.push_back(static_cast<char>(0x80 | opcode));
  f.push_back(static_cast<char>(0x80 | payload.size()));
  f.append(4, '\0');
  f.append(payload);
  return f;
}

struct frame_view {
  unsigned opcode;
  bool fin;
  std::string_view payload;
  std::size_t size;  // header and payload
};

// The first frame of `d`, if it is there whole.
std::optional<frame_view> first_frame(std::string_view d) {
  auto byte = [&d](std::size_t i) { return static_cast<std::uint8_t>(d[i]); };
  if (d.size() < 2) return std::nullopt;
  std::size_t head = 2;
  std::uint64_t length = byte(1) & 0x7f;
  if (length >= 126) {
    std::size_t n = length == 126 ? 2 : 8;
    if (d.size() < 2 + n) return std::nullopt;
    length = 0;
    for (std::size_t i = 0; i < n; ++i) length = length << 8 | byte(2 + i);
    head += n;
  }
  if (byte(1) & 0x80) head += 4;  // a server's frames are unmasked; skip a key all the same
  if (d.size() < head || d.size() - head < length) return std::nullopt;
  return frame_view{byte(0) & 0x0fu, (byte(0) & 0x80) != 0,
                    d.substr(head, static_cast<std::size_t>(length)),
                    head + static_cast<std::size_t>(length)};
}

// Reads what the socket has (after waiting for it) onto the end of `in`; false at its end.
asio::awaitable<bool> read_more(tcp::socket& s, std::string& in) {
  thread_local std::array<char, 65536> scratch;  // used only between two suspensions
  for (;;) {
    boost::system::error_code ec;
    std::size_t n = s.read_some(asio::buffer(scratch), ec);
    if (!ec) {
      in.append(scratch.data(), n);
      co_return true;
    }
    if (ec != asio::error::would_block && ec != asio::error::try_again) co_return false;
    auto [wec] = co_await s.async_wait(tcp::socket::wait_read, asio::as_tuple(asio::use_awaitable));
    if (wec) co_return false;
  }
}

// Connects and upgrades; what came after the 101's head is left in `in`.
asio::awaitable<bool> open(tcp::socket& s, const options& o, int index, std::string& in) {
  auto [cec] = co_await s.async_connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), o.subscribe_port(index)),
      asio::as_tuple(asio::use_awaitable));
  if (cec) co_return false;
  boost::system::error_code ec;
  s.set_option(tcp::no_delay(true), ec);
  s.non_blocking(true, ec);
  auto request = upgrade_request(index);
  auto [wec, wn] =
      co_await asio::async_write(s, asio::buffer(request), asio::as_tuple(asio::use_awaitable));
  if (wec) co_return false;
  std::size_t end = 0;
  while ((end = in.find("\r\n\r\n")) == std::string::npos)
    if (in.size() > 8192 || !co_await read_more(s, in)) co_return false;
  bool upgraded = in.starts_with("HTTP/1.1 101");
  in.erase(0, end + 4);
  co_return upgraded;
}

}  // namespace

asio::awaitable<void> subscriber(asio::io_context& io, const options& o, int index, tally& t,
                                 probes* p) {
  tcp::socket s(io);
  std::string in;
  bool opened = co_await open(s, o, index, in);
  bool hello = false;  // no hello, no stream: counted as failed
  long queued_seen = 0;
  int code = -1;  // the server's close code; -1: the stream ended without one
  bool closing = false;
  // What came with the 101 is handled before the first read.
  for (bool more = opened; more && !closing; more = co_await read_more(s, in)) {
    auto now = clock_type::now();
    std::string_view rest(in);
    long frames = 0;
    std::string answers;  // pongs, or the answer to the close
    while (auto f = first_frame(rest)) {
      rest.remove_prefix(f->size);
      if (f->opcode == 0x8) {  // close: answered with its code
        auto c = f->payload;
        code = c.size() >= 2
                   ? static_cast<std::uint8_t>(c[0]) << 8 | static_cast<std::uint8_t>(c[1])
                   : 1005;
        answers += masked_control_frame(0x8, c.substr(0, 2));
        closing = true;
        break;
      }
      if (f->opcode == 0x9) answers += masked_control_frame(0xA, f->payload);
      if (f->opcode >= 0x8 || !f->fin) continue;
      if (!hello) {  // the first frame is the hello
        hello = true;
        ++t.opened;
        t.wake();
        continue;
      }
      ++frames;
      if (p && f->payload.find("\"status\":\"queued\"") != std::string_view::npos &&
          queued_seen < static_cast<long>(p->sent_ns.size())) {
        auto sent = clock_type::time_point(
            clock_type::duration(p->sent_ns[static_cast<std::size_t>(queued_seen)].load()));
        ++queued_seen;
        std::lock_guard lock(t.mutex);
        t.latencies_us.push_back(micros(now - sent));
        ++p->received;
        t.wake();
      }
    }
    in.erase(0, in.size() - rest.size());
    if (frames) t.frames.fetch_add(frames, std::memory_order_relaxed);
    if (!answers.empty()) {
      if (closing) {
        // The answer to the close and our FIN in one segment, as the server sends its own: the
        // answer held back (MSG_MORE), then the send side shut, which pushes both.
        boost::system::error_code ec;
        s.send(asio::buffer(answers), MSG_MORE, ec);
        if (ec) break;
        s.shutdown(tcp::socket::shutdown_send, ec);
        break;
      }
      auto [wec, wn] =
          co_await asio::async_write(s, asio::buffer(answers), asio::as_tuple(asio::use_awaitable));
      if (wec) break;
    }
  }
  if (closing) {
    // As Beast's client does, the close is done at the server's end of the stream.
    in.clear();
    while (co_await read_more(s, in)) in.clear();
  }
  if (!hello) {
    ++t.failed;
    t.wake();
    co_return;
  }
  std::lock_guard lock(t.mutex);
  if (t.closed == 0) {
    t.first_close = clock_type::now();
    t.cpu_at_first_close = own_cpu_seconds();
  }
  ++t.close_codes[code];
  t.last_close = clock_type::now();
  ++t.closed;
  t.wake();
}

}  // namespace wsload
