// An outbox: its order, its close, its limits in frames and bytes, and its bursts.
#include "net/outbox.hpp"
#include "outbox_probe.hpp"

#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using namespace quiesce;
using namespace net_test;

BOOST_AUTO_TEST_CASE(an_outbox_sends_in_order_and_its_close_last) {
  asio::io_context io;
  net::outbox out(std::make_shared<net::send_limit>(8));
  BOOST_TEST(out.push(text("a")));
  BOOST_TEST(out.push(text("b")));
  out.close(websocket::close_reason(websocket::close_code::service_restart), text("draining"));
  BOOST_TEST(out.push(text("after the close")));  // dropped, and not an overflow
  auto [sent, code] = drain(io, out);
  BOOST_TEST(sent == (std::vector<std::string>{"a", "b", "draining"}),
             boost::test_tools::per_element());
  BOOST_TEST(code == 1012);
}

BOOST_AUTO_TEST_CASE(an_outbox_past_its_limit_drops_what_waits_and_closes_1013) {
  asio::io_context io;
  auto limit = std::make_shared<net::send_limit>(2);
  net::outbox out(limit);
  BOOST_TEST(out.push(text("1")));
  BOOST_TEST(out.push(text("2")));
  BOOST_TEST(!out.push(text("3")));
  BOOST_TEST(out.push(text("4")));  // closing already: told once
  auto [sent, code] = drain(io, out);
  BOOST_TEST(sent.empty());
  BOOST_TEST(code == 1013);

  net::outbox burst(limit);
  limit->allow_burst(1);  // the deadline's one last event per task fits
  for (const char* s : {"1", "2", "3"}) BOOST_TEST(burst.push(text(s)));
  burst.close(websocket::close_reason(websocket::close_code::service_restart));
  BOOST_TEST(drain(io, burst).first.size() == 3u);
}

// Bytes limit too: a client is as far behind as the bytes it has waiting, whatever the frame
// count. Once the limit's bytes wait, the next frame overflows; one frame always fits. The
// deadline's burst is counted in frames alone.
BOOST_AUTO_TEST_CASE(an_outbox_past_its_byte_limit_closes_1013) {
  asio::io_context io;
  auto limit = std::make_shared<net::send_limit>(1000, 10);
  net::outbox out(limit);
  BOOST_TEST(out.push(text("0123456789abc")));  // larger than the limit alone, nothing waited
  BOOST_TEST(out.waiting_bytes() == 13u);
  BOOST_TEST(!out.push(text("x")));
  out.close(websocket::close_reason(websocket::close_code::service_restart));  // the first wins
  BOOST_TEST(drain(io, out).second == 1013);

  net::outbox sent(limit);
  for (const char* s : {"12345", "6789"}) BOOST_TEST(sent.push(text(s)));
  net::outbox::batch b;
  sent.take(b);
  BOOST_TEST(b.frames.size() == 2u);
  BOOST_TEST(sent.waiting_bytes() == 0u);  // taken by the writer: the client is not behind
  for (const char* s : {"12345", "6789"}) BOOST_TEST(sent.push(text(s)));

  net::outbox burst(limit);
  limit->allow_burst(1);
  for (const char* s : {"0123456789", "0123456789", "0123456789"}) BOOST_TEST(burst.push(text(s)));
  burst.close(websocket::close_reason(websocket::close_code::service_restart));
  BOOST_TEST(drain(io, burst).first.size() == 3u);
}

// The first frames (hello and a replay) are not live events a client fell behind on: they do not
// count against the limit, and what is pushed after them still does.
BOOST_AUTO_TEST_CASE(an_outbox_sends_its_first_frames_first_and_outside_the_limit) {
  asio::io_context io;
  net::outbox out(std::make_shared<net::send_limit>(2));
  out.begin_with({text("hello"), text("r1"), text("r2"), text("r3")});
  BOOST_TEST(out.push(text("live1")));
  BOOST_TEST(out.push(text("live2")));
  out.close(websocket::close_reason(websocket::close_code::service_restart));
  auto [sent, code] = drain(io, out);
  BOOST_TEST(sent == (std::vector<std::string>{"hello", "r1", "r2", "r3", "live1", "live2"}),
             boost::test_tools::per_element());
  BOOST_TEST(code == 1012);

  net::outbox over(std::make_shared<net::send_limit>(2));
  over.begin_with({text("hello")});
  BOOST_TEST(over.push(text("1")));
  BOOST_TEST(over.push(text("2")));
  BOOST_TEST(!over.push(text("3")));
  BOOST_TEST(drain(io, over).second == 1013);
}

// A queue that is never empty for long (two in, one out) still sends everything once, in order.
BOOST_AUTO_TEST_CASE(an_outbox_that_never_runs_dry_keeps_its_order) {
  net::outbox out(std::make_shared<net::send_limit>(10000));
  std::vector<std::string> sent;
  net::outbox::batch b;
  int pushed = 0;
  while (pushed < 2000) {
    for (int k = 0; k < 2; ++k) out.push(text(std::to_string(pushed++)));
    out.take(b);
    for (const auto& q : b.frames) sent.push_back(*q.bytes);
  }
  BOOST_TEST_REQUIRE(sent.size() == 2000u);
  for (int i = 0; i < 2000; ++i) BOOST_TEST_REQUIRE(sent[i] == std::to_string(i));
}

// The writer is told of a burst once, at its end, so that the burst goes out in one write;
// outside a burst, each frame tells it at once. A close is never held back.
BOOST_AUTO_TEST_CASE(a_burst_tells_the_writer_once_at_its_end) {
  net::outbox out(std::make_shared<net::send_limit>(100));
  int told = 0;
  out.on_ready([&told] { ++told; });
  out.begin_burst();
  out.push(text("1"));
  out.push(text("2"));
  BOOST_TEST(told == 0);
  out.end_burst();
  BOOST_TEST(told == 1);
  taken t;
  take_all(out, t);
  BOOST_TEST(t.frames == (std::vector<std::string>{"1", "2"}), boost::test_tools::per_element());
  out.begin_burst();
  out.end_burst();  // an empty burst: nothing to tell
  BOOST_TEST(told == 1);
  out.push(text("3"));
  BOOST_TEST(told == 2);
  out.begin_burst();
  out.close(websocket::close_reason(websocket::close_code::service_restart));
  BOOST_TEST(told == 3);
  take_all(out, t);
  BOOST_TEST(!out.ready());  // the close was taken: nothing ever again
  out.pong("p");
  BOOST_TEST(!out.ready());
  BOOST_TEST(t.close.value_or(0) == 1012);
}
