// A stream's wire (net/ws_wire) against Beast's own WebSocket client over loopback: what the
// server writes past Beast must be what a conforming client reads, and what such a client sends
// (fragments, pings, binary, a close) must be understood; rule breaks close with RFC 6455's code.
#define BOOST_TEST_MODULE wire
#include "net/outbox.hpp"
#include "net/ws_wire.hpp"
#include "stream/stream_client.hpp"
#include "tcp_segments.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/test/unit_test.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using namespace quiesce;

namespace {

net::frame text(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

// One server-side stream on its own thread: the outbox is reached through post(), the messages
// it was sent are kept, and `ended` completes when the wire does.
struct server {
  // `send_buffer`: the socket's SO_SNDBUF, when a test needs writes the kernel takes in parts.
  explicit server(net::wire_settings s, int send_buffer = 0)
      : settings(s), send_buffer(send_buffer) {
    asio::co_spawn(io, serve(),
                   asio::bind_cancellation_slot(cancel.slot(), [this](std::exception_ptr e) {
                     if (e)
                       ended.set_exception(e);
                     else
                       ended.set_value();
                   }));
    thread = std::thread([this] { io.run(); });
  }
  ~server() {
    io.stop();
    thread.join();
  }
  asio::awaitable<void> serve() {
    auto socket = co_await acceptor.async_accept(asio::use_awaitable);
    if (send_buffer) socket.set_option(asio::socket_base::send_buffer_size(send_buffer));
    socket.set_option(tcp::no_delay(true));  // as the listener does: every send may be a segment
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    beast::http::request<beast::http::string_body> req;
    co_await beast::http::async_read(stream, buffer, req, asio::use_awaitable);
    auto ws = co_await net::accept_upgrade(stream.release_socket(), std::move(req), 5s);
    // No Boost.Test macro on this thread: they are not thread-safe (TSan says so).
    if (!ws) throw std::runtime_error("the upgrade failed");
    net::wire_handlers on{[this](std::string_view m) {
                            {
                              std::lock_guard lock(mutex);
                              messages.emplace_back(m);
                            }
                            if (m == "last") out.push(text("got last"));
                          },
                          [this](std::size_t n) { sent += n; }};
    net::ws_wire wire(std::move(*ws), out, settings, std::move(on));
    co_await wire.async_run(asio::use_awaitable);
  }
  void post(std::function<void(net::outbox&)> f) {
    asio::post(io, [this, f = std::move(f)] { f(out); });
  }
  std::vector<std::string> got() {
    std::lock_guard lock(mutex);
    return messages;
  }
  // Bounded: a wire that waits for what never comes fails the test instead of hanging it.
  bool ends_within(std::chrono::seconds d) {
    return ended_future.wait_for(d) == std::future_status::ready;
  }

  asio::io_context io;
  tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
  net::wire_settings settings;
  int send_buffer;
  asio::cancellation_signal cancel;  // emitted on the io thread (post)
  net::outbox out{std::make_shared<net::send_limit>(10000)};
  std::promise<void> ended;
  std::future<void> ended_future = ended.get_future();
  std::mutex mutex;
  std::vector<std::string> messages;
  std::atomic<std::size_t> sent{0};
  std::thread thread;
};

struct client {
  explicit client(server& s) : ws(io) {
    ws.next_layer().connect(s.acceptor.local_endpoint());
    ws.handshake("127.0.0.1", "/ws/test");
  }
  std::string read() {
    beast::flat_buffer b;
    ws.read(b);
    return beast::buffers_to_string(b.data());
  }
  // The socket for plain ::recv, bounded by a receive timeout (Asio's blocking read would poll
  // past it): a server that never sends what the test waits for fails it instead of hanging it.
  int bounded_fd() {
    timeval bound{5, 0};
    ::setsockopt(ws.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
    return ws.next_layer().native_handle();
  }
  // Reads until the server's close; Beast answers it. The close's code.
  std::uint16_t read_until_close() {
    beast::error_code ec;
    for (;;) {
      beast::flat_buffer b;
      ws.read(b, ec);
      if (ec) break;
    }
    BOOST_TEST((ec == websocket::error::closed), ec.message());
    return static_cast<std::uint16_t>(ws.reason().code);
  }
  asio::io_context io;
  websocket::stream<tcp::socket> ws;
};

const net::wire_settings normal{1 << 20, 10s, 10s};

}  // namespace

BOOST_AUTO_TEST_CASE(beast_reads_every_frame_size_in_order_then_the_close) {
  server s(normal);
  client c(s);
  const std::vector<std::string> sizes{"", "short", std::string(200, 'm'),
                                       std::string(70000, 'L')};  // 7-, 16- and 64-bit lengths
  s.post([&sizes](net::outbox& out) {
    out.begin_with({text("hello")});
    for (const auto& t : sizes) out.push(text(t));
    out.close(websocket::close_reason(websocket::close_code::service_restart, "server restarting"),
              text("draining"));
  });
  BOOST_TEST(c.read() == "hello");
  for (const auto& t : sizes) BOOST_TEST(c.read() == t);
  BOOST_TEST(c.read() == "draining");
  BOOST_TEST(c.read_until_close() == 1012);
  BOOST_TEST(std::string(c.ws.reason().reason.data(), c.ws.reason().reason.size()) ==
             "server restarting");
  // The answer ends it: the server does not wait out its 10 s close timeout for the client's FIN
  // (a Beast client waits for the server to hang up first).
  BOOST_TEST(s.ends_within(5s));
  BOOST_TEST(s.sent.load() == sizes.size() + 2);
}

// A fanout's batch framed once (every header length in one run), between single texts: Beast
// reads each of its frames as a message of its own, in order, and `sent` counts each.
BOOST_AUTO_TEST_CASE(beast_reads_a_framed_batch_as_its_messages) {
  server s(normal);
  client c(s);
  const std::vector<std::string> sizes{"", "short", std::string(200, 'm'),
                                       std::string(70000, 'L')};  // 7-, 16- and 64-bit lengths
  std::vector<tasks::event_ptr> events;
  events.reserve(sizes.size());
  for (std::uint64_t seq = 1; const auto& t : sizes)
    events.push_back(
        std::make_shared<const tasks::stream_event>(tasks::stream_event{seq++, "a", t}));
  s.post([events](net::outbox& out) {
    out.push(text("before"));
    stream::taken_batch batch(events);  // far below the 10,000-frame limit: room for it
    out.push(batch.run());
    out.push(text("after"));
  });
  BOOST_TEST(c.read() == "before");
  for (const auto& t : sizes) BOOST_TEST(c.read() == t);
  BOOST_TEST(c.read() == "after");
  beast::error_code ec;
  c.ws.close(websocket::close_code::normal, ec);
  BOOST_TEST(s.ends_within(5s));
  BOOST_TEST(s.sent.load() == sizes.size() + 2);
}

BOOST_AUTO_TEST_CASE(fragments_binary_and_pings_from_beast_are_understood) {
  server s(normal);
  client c(s);
  c.ws.auto_fragment(true);
  c.ws.write_buffer_bytes(8);  // Beast's smallest: a 30-byte message goes in four fragments
  c.ws.text(true);
  c.ws.write(asio::buffer(std::string(R"({"type":"subscribe","all":true})")));
  c.ws.binary(true);
  c.ws.write(asio::buffer(std::string("bin")));
  std::string pong;
  c.ws.control_callback([&pong](websocket::frame_type kind, beast::string_view payload) {
    if (kind == websocket::frame_type::pong) pong = std::string(payload);
  });
  c.ws.ping("are you there");
  c.ws.text(true);
  c.ws.write(asio::buffer(std::string("last")));
  BOOST_TEST(c.read() == "got last");  // the pong went out before it, in its batch or earlier
  BOOST_TEST(pong == "are you there");
  auto got = s.got();
  BOOST_TEST(got == (std::vector<std::string>{R"({"type":"subscribe","all":true})", "bin", "last"}),
             boost::test_tools::per_element());
  c.ws.close(websocket::close_code::normal);  // Beast waits for the server's answer
  BOOST_TEST(c.ws.reason().code == websocket::close_code::normal);
  BOOST_TEST(s.ends_within(5s));
}

BOOST_AUTO_TEST_CASE(a_message_longer_than_many_reads_arrives_whole) {
  server s(normal);
  client c(s);
  std::string big(200000, 'b');
  big.back() = 'e';
  c.ws.write(asio::buffer(big));
  c.ws.write(asio::buffer(std::string("last")));
  BOOST_TEST(c.read() == "got last");
  auto got = s.got();
  BOOST_TEST_REQUIRE(got.size() == 2u);
  BOOST_TEST((got[0] == big));
  c.ws.close(websocket::close_code::normal);
  BOOST_TEST(s.ends_within(5s));
}

// A message the server refuses: its close code, once the stream has ended with nothing handed on.
std::uint16_t refused(net::wire_settings settings, const std::string& message) {
  server s(settings);
  client c(s);
  c.ws.text(true);
  c.ws.write(asio::buffer(message));
  auto code = c.read_until_close();
  BOOST_TEST(s.ends_within(5s));
  BOOST_TEST(s.got().empty());
  return code;
}

BOOST_AUTO_TEST_CASE(a_message_past_the_limit_is_closed_1009) {
  BOOST_TEST(refused({64, 10s, 10s}, std::string(300000, 'x')) == 1009);  // skipped over many reads
}

BOOST_AUTO_TEST_CASE(text_that_is_not_utf8_is_closed_1007) {
  BOOST_TEST(refused(normal, "caf\xc3") == 1007);  // cut inside a two-byte sequence
}

// A close whose reason is not UTF-8 is the peer's last frame all the same: answered 1007, and the
// stream ends (it once parsed the same bytes again and again).
BOOST_AUTO_TEST_CASE(a_close_with_a_reason_that_is_not_utf8_is_answered_1007_and_ends) {
  server s(normal);
  client c(s);
  beast::error_code ec;
  c.ws.close(websocket::close_reason(websocket::close_code::normal, "caf\xc3"), ec);
  BOOST_TEST(s.ends_within(5s));
  BOOST_TEST(c.ws.reason().code == 1007);
}

BOOST_AUTO_TEST_CASE(a_peer_that_reads_answers_pings_and_stays_one_that_does_not_is_dropped) {
  server s({1 << 20, 100ms, 10s});
  client c(s);
  // Beast answers pings while it reads: ten intervals pass and the stream is still open.
  s.post([&s](net::outbox& out) {
    auto t = std::make_shared<asio::steady_timer>(s.io, 1s);
    t->async_wait([t, &out](auto) { out.push(text("still here")); });
  });
  BOOST_TEST(c.read() == "still here");
  BOOST_TEST(!s.ends_within(0s));
  // Now it stops reading, so no pong goes back: dropped after about two intervals.
  BOOST_TEST(s.ends_within(5s));
}

// A burst far larger than the kernel takes at once: what the first write leaves goes out once the
// socket has room again, from the middle of a frame on, and the client reads every frame whole,
// in order.
BOOST_AUTO_TEST_CASE(a_burst_larger_than_the_kernel_takes_arrives_whole_and_in_order) {
  server s(normal, 4096);
  client c(s);
  constexpr int frames = 300;
  s.post([](net::outbox& out) {
    out.begin_burst();
    for (int i = 0; i < frames; ++i) out.push(text(std::to_string(i) + std::string(10000, 'x')));
    out.end_burst();
  });
  for (int i = 0; i < frames; ++i) {
    auto got = c.read();
    BOOST_TEST_REQUIRE(got == std::to_string(i) + std::string(10000, 'x'));
  }
  // The count is taken when the last write completes, which may be after the client has read
  // it: once the stream has ended, every handler of the wire has run.
  beast::error_code ec;
  c.ws.close(websocket::close_code::normal, ec);
  BOOST_TEST(s.ends_within(5s));
  BOOST_TEST(s.sent.load() == static_cast<std::size_t>(frames));  // counted once all went
}

// A burst of more buffers than one writev takes still leaves in full segments (every writev but
// the last says MSG_MORE). Small frames here, so one segment holds them all.
BOOST_AUTO_TEST_CASE(a_burst_of_many_writes_leaves_in_full_segments) {
  server s(normal);
  client c(s);
  const int fd = c.bounded_fd();
  const auto before = test::data_segments_in(fd);
  constexpr int frames = 200;  // 400 buffers: seven writev calls of at most 64
  s.post([](net::outbox& out) {
    out.begin_burst();
    for (int i = 0; i < frames; ++i) out.push(text("x"));
    out.end_burst();
  });
  std::string got(frames * 3, '\0');  // each: 0x81, length 1, "x"
  auto n = ::recv(fd, got.data(), got.size(), MSG_WAITALL);
  BOOST_TEST(n == static_cast<ssize_t>(got.size()));
  BOOST_TEST(got.substr(0, 3) == "\x81\x01x");
  BOOST_TEST(test::data_segments_in(fd) - before == 1u,
             "one segment for the burst, not one per writev");
  beast::error_code ec;
  c.ws.close(websocket::close_code::normal, ec);
  BOOST_TEST(s.ends_within(5s));  // the wire deletes itself before the server goes
}

// Terminal cancellation (the drain's deadline, through the cancellation tree) ends the stream
// at once: the wire completes and the socket is closed, with no close handshake.
BOOST_AUTO_TEST_CASE(terminal_cancellation_ends_the_wire_and_closes_the_socket) {
  server s(normal);
  client c(s);
  s.post([](net::outbox& out) { out.push(text("open")); });
  BOOST_TEST(c.read() == "open");
  asio::post(s.io, [&s] { s.cancel.emit(asio::cancellation_type::terminal); });
  BOOST_TEST(s.ends_within(5s));
  beast::flat_buffer b;
  beast::error_code ec;
  c.ws.read(b, ec);
  BOOST_TEST((ec == asio::error::eof || ec == asio::error::connection_reset), ec.message());
}

// The server closes TCP first (RFC 6455, 7.1.1): its FIN follows its close frame at once, before
// the client has answered, and the answer still arrives on the half-closed socket and ends the
// stream. The client here reads raw bytes, so nothing answers for it.
BOOST_AUTO_TEST_CASE(our_fin_follows_our_close_and_the_answer_still_ends_the_stream) {
  server s(normal);
  client c(s);
  auto& raw = c.ws.next_layer();
  const int fd = c.bounded_fd();  // a server that waits for the answer before its FIN fails
  s.post([](net::outbox& out) {
    out.close(websocket::close_reason(websocket::close_code::service_restart), text("draining"));
  });
  std::string got;
  ssize_t n = 0;
  std::array<char, 256> b{};
  while ((n = ::recv(fd, b.data(), b.size(), 0)) > 0)
    got.append(b.data(), static_cast<std::size_t>(n));
  BOOST_TEST(n == 0, "no end of stream before the answer");
  // A text frame "draining", then a close frame with 1012 (0x03f4), and nothing after.
  BOOST_TEST(got == std::string("\x81\x08"
                                "draining"
                                "\x88\x02\x03\xf4",
                                14));
  BOOST_TEST(!s.ends_within(0s));
  // The answer: a masked close 1012 (a zero mask leaves the payload as it is).
  const std::string answer("\x88\x82\x00\x00\x00\x00\x03\xf4", 8);
  beast::error_code ec;
  asio::write(raw, asio::buffer(answer), ec);
  BOOST_TEST(!ec, ec.message());
  BOOST_TEST(s.ends_within(5s));
}
