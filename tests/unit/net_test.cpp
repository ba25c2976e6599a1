// A stream's send side: the outbox's order, close and overflow, the client's inbox, which
// gathers deliveries from any thread for its strand, and the cork around a burst.
#define BOOST_TEST_MODULE net
#include "net/http.hpp"
#include "net/outbox.hpp"
#include "net/stream_fanout.hpp"
#include "net/stream_hub.hpp"
#include "net/tcp_cork.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <future>
#include <optional>
#include <sstream>
#include <thread>

#ifdef __linux__
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using namespace quiesce;

namespace {

net::frame text(const std::string& s) { return std::make_shared<const std::string>(s); }

// What a writer took from an outbox: the frames' texts, then the close code once it came.
struct taken {
  std::vector<std::string> frames;
  std::optional<std::uint16_t> close;
};

// Takes everything `out` has, as the wire does each time it is told.
void take_all(net::outbox& out, taken& t) {
  net::outbox::batch b;
  while (out.ready()) {
    out.take(b);
    for (const auto& f : b.frames) t.frames.push_back(*f);
    if (b.close) t.close = static_cast<std::uint16_t>(b.close->code);
  }
}

// Everything `out` sends until its close: the frames' texts, then the close code.
std::pair<std::vector<std::string>, std::uint16_t> drain(asio::io_context& io, net::outbox& out) {
  taken t;
  out.on_ready([&out, &t] { take_all(out, t); });
  take_all(out, t);
  io.run();
  io.restart();
  out.on_ready(nullptr);
  BOOST_TEST_REQUIRE(t.close.has_value());
  return {t.frames, *t.close};
}

tasks::event_ptr event(std::uint64_t seq, std::string task) {
  return std::make_shared<const tasks::stream_event>(
      tasks::stream_event{seq, std::move(task), std::to_string(seq)});
}

}  // namespace

// A session writes response_head() and the body; a client must read what Beast would have sent.
BOOST_AUTO_TEST_CASE(a_response_head_and_body_are_what_beasts_serializer_writes) {
  namespace http = net::http;
  std::vector<net::response> answers;
  answers.push_back(net::json_text_response(http::status::accepted, R"({"task_id":"x"})"));
  answers.back().set(http::field::location, "/v1/tasks/x");
  answers.back().set("Idempotent-Replayed", "true");
  answers.push_back(net::error_response(http::status::too_many_requests, "queue_full", "later"));
  answers.back().set(http::field::retry_after, "1");
  answers.push_back(net::error_response(http::status::payload_too_large, "body_too_large", "big"));
  answers.push_back(net::response{http::status::no_content, 10});        // HTTP/1.0, no body
  answers.push_back(net::response{static_cast<http::status>(299), 11});  // a code without a name
  answers.back().body() = "text";
  for (std::size_t i = 0; i < answers.size(); ++i) {
    auto& res = answers[i];
    res.keep_alive(i % 2 == 0);
    res.prepare_payload();
    std::ostringstream beast_wrote;
    beast_wrote << res;
    BOOST_TEST(net::response_head(res) + res.body() == beast_wrote.str());
  }
}

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
    for (const auto& f : b.frames) sent.push_back(*f);
  }
  BOOST_TEST_REQUIRE(sent.size() == 2000u);
  for (int i = 0; i < 2000; ++i) BOOST_TEST_REQUIRE(sent[i] == std::to_string(i));
}

// An event with no task (a gap: events this replica never read) is for every stream, also one
// that follows named tasks only.
BOOST_AUTO_TEST_CASE(a_client_that_follows_named_tasks_still_gets_a_gap) {
  asio::io_context io;
  auto f = std::make_shared<net::stream_fanout>(asio::make_strand(io));
  auto c = std::make_shared<net::stream_client>(f, "c", std::make_shared<net::send_limit>(10));
  asio::post(f->executor(), [f, c] {
    f->add(c);
    c->follow({"wanted"});
  });
  for (auto [seq, task] : {std::pair{1, "other"}, {2, ""}, {3, "wanted"}, {4, "other"}})
    f->deliver(event(seq, task));
  c->request_close(websocket::close_reason(websocket::close_code::service_restart), nullptr);
  BOOST_TEST(drain(io, c->out()).first == (std::vector<std::string>{"2", "3"}),
             boost::test_tools::per_element());
  f->remove(*c);  // as a stream's end does: the fanout and its client hold each other till then
}

// One fanout per thread hands each event to every client of its thread, each with its own
// filter; a client that joins with a replay up to seq k (seen_through) gets what follows k only,
// also what was handed to the fanout before it joined; a client that left gets nothing more.
BOOST_AUTO_TEST_CASE(a_fanout_gives_each_client_what_it_wants_once) {
  asio::io_context io(1);
  auto f = std::make_shared<net::stream_fanout>(io.get_executor());
  auto limit = std::make_shared<net::send_limit>(100);
  auto all = std::make_shared<net::stream_client>(f, "all", limit);
  auto named = std::make_shared<net::stream_client>(f, "named", limit);
  auto late = std::make_shared<net::stream_client>(f, "late", limit);
  auto gone = std::make_shared<net::stream_client>(f, "gone", limit);
  asio::post(io, [&] {
    f->add(all);
    f->add(named);
    named->follow({"b"});
    f->add(gone);
  });
  f->deliver(event(1, "a"));
  f->deliver(event(2, "b"));
  io.run();
  io.restart();
  asio::post(io, [&] {
    // As open_stream does: the bus's replay went up to 3, and 3 is already in the inbox.
    f->deliver(event(3, "a"));
    late->seen_through(3);
    f->add(late);
    f->remove(*gone);
  });
  io.run();
  io.restart();
  f->deliver(event(4, "b"));
  for (auto& c : {all, named, late, gone})
    c->request_close(websocket::close_reason(websocket::close_code::service_restart), nullptr);
  io.run();
  io.restart();
  auto frames = [&io](net::stream_client& c) { return drain(io, c.out()).first; };
  BOOST_TEST(frames(*all) == (std::vector<std::string>{"1", "2", "3", "4"}),
             boost::test_tools::per_element());
  BOOST_TEST(frames(*named) == (std::vector<std::string>{"2", "4"}),
             boost::test_tools::per_element());
  BOOST_TEST(frames(*late) == (std::vector<std::string>{"4"}), boost::test_tools::per_element());
  BOOST_TEST(frames(*gone) == (std::vector<std::string>{"1", "2"}),
             boost::test_tools::per_element());
  BOOST_TEST(f->size() == 3u);
  for (auto& c : {all, named, late}) f->remove(*c);
  BOOST_TEST(f->size() == 0u);
}

// The bus delivers from its own thread while the client's strand takes batches on others: every
// wanted event arrives once, in seq order, and a client that falls behind is told once.
BOOST_AUTO_TEST_CASE(a_client_takes_deliveries_from_another_thread_in_order) {
  asio::thread_pool pool(2);
  auto strand = asio::make_strand(pool.get_executor());
  constexpr std::uint64_t n = 20000;
  auto f = std::make_shared<net::stream_fanout>(strand);
  auto c = std::make_shared<net::stream_client>(f, "c", std::make_shared<net::send_limit>(n));
  // The writer, on the strand as the wire is: it takes whatever it is told of.
  std::promise<std::vector<std::string>> got;
  taken t;
  // The outbox keeps its writer: a raw pointer, or the client would own itself (a leak).
  asio::post(strand, [f, c, &t, &got] {
    f->add(c);
    c->follow({"wanted"});
    c->out().on_ready([&out = c->out(), &t, &got] {
      take_all(out, t);
      if (t.close) got.set_value(t.frames);
    });
  });
  std::thread bus([f] {
    for (std::uint64_t seq = 1; seq <= n; ++seq)
      f->deliver(event(seq, seq % 2 ? "wanted" : "other"));
  });
  bus.join();
  // Requested after every delivery: the close goes out behind what the inbox still held.
  c->request_close(websocket::close_reason(websocket::close_code::service_restart), nullptr);
  auto sent = got.get_future().get();
  BOOST_TEST_REQUIRE(sent.size() == n / 2);
  for (std::uint64_t i = 0; i < n / 2; ++i)
    BOOST_TEST_REQUIRE(sent[i] == std::to_string(2 * i + 1));

  auto slow_fanout = std::make_shared<net::stream_fanout>(strand);
  auto slow = std::make_shared<net::stream_client>(slow_fanout, "slow",
                                                   std::make_shared<net::send_limit>(10));
  std::atomic<int> told{0};
  slow->on_overflow = [&told] { ++told; };
  asio::post(strand, [slow_fanout, slow] { slow_fanout->add(slow); });
  for (std::uint64_t seq = 1; seq <= 100; ++seq) slow_fanout->deliver(event(seq, "t"));
  std::promise<std::uint16_t> code;
  taken slow_taken;
  asio::post(strand, [slow, &slow_taken, &code] {
    auto writer = [&out = slow->out(), &slow_taken, &code] {
      take_all(out, slow_taken);
      if (slow_taken.close) code.set_value(*slow_taken.close);
    };
    slow->out().on_ready(writer);
    writer();  // the overflow may have come before the writer was there
  });
  BOOST_TEST(code.get_future().get() == 1013);
  BOOST_TEST(told.load() == 1);
  asio::post(strand, [f, c, slow_fanout, slow] {
    f->remove(*c);
    slow_fanout->remove(*slow);
  });
  pool.join();
}

// The drain closes a stream from its own thread just after a task's last event was delivered
// by a handler on the stream's thread (a worker there): the close must not overtake the event.
// An io_context queues what a handler posts only when the handler returns, behind what other
// threads posted meanwhile; the close goes through the fanout's inbox, behind the event.
BOOST_AUTO_TEST_CASE(a_close_requested_elsewhere_goes_out_after_what_was_delivered) {
  asio::io_context io(1);  // one thread, as a network thread's (app/network_threads.cpp)
  auto f = std::make_shared<net::stream_fanout>(io.get_executor());
  auto c = std::make_shared<net::stream_client>(f, "c", std::make_shared<net::send_limit>(10));
  asio::post(io, [f, c] {
    f->add(c);
    f->deliver(event(1, "t"));  // the task's last event, from a worker on this thread
    std::thread drain([c] {
      c->request_close(websocket::close_reason(websocket::close_code::service_restart),
                       text("draining"));
    });
    drain.join();  // the close was requested before this handler returns
  });
  auto [frames, code] = drain(io, c->out());
  BOOST_TEST(frames == (std::vector<std::string>{"1", "draining"}),
             boost::test_tools::per_element());
  BOOST_TEST(code == 1012);
  f->remove(*c);
}

// A worker publishes a short task's events from handlers that run between the fanout's takes on
// the same thread. Without a hold, each event is a burst (a write) of its own to every client;
// with one, the events that come while the take waits go to each client as one burst.
BOOST_AUTO_TEST_CASE(a_fanout_that_holds_gives_what_came_meanwhile_as_one_burst) {
  using namespace std::chrono_literals;
  for (auto hold : {std::chrono::microseconds(0), std::chrono::microseconds(50ms)}) {
    asio::io_context io(1);
    auto f = std::make_shared<net::stream_fanout>(io.get_executor(), hold);
    auto c = std::make_shared<net::stream_client>(f, "c", std::make_shared<net::send_limit>(10));
    int bursts = 0;
    taken t;
    c->out().on_ready([&out = c->out(), &t, &bursts] {
      ++bursts;
      take_all(out, t);
    });
    asio::post(io, [f, c] { f->add(c); });
    io.run();
    io.restart();
    // queued, then running and succeeded from two later handlers, as the worker's hops are.
    asio::post(io, [&io, f] {
      f->deliver(event(1, "t"));
      asio::post(io, [&io, f] {
        f->deliver(event(2, "t"));
        asio::post(io, [f] { f->deliver(event(3, "t")); });
      });
    });
    io.run();
    io.restart();
    BOOST_TEST(t.frames == (std::vector<std::string>{"1", "2", "3"}),
               boost::test_tools::per_element());
    BOOST_TEST(bursts == (hold.count() == 0 ? 3 : 1), "hold " << hold.count() << " us");
    c->out().on_ready(nullptr);
    f->remove(*c);
  }
}

#ifdef __linux__
// A burst is held while corked and goes out together once the cork is lifted.
BOOST_AUTO_TEST_CASE(a_corked_socket_sends_what_it_held_once_uncorked) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket sender(io), receiver(io);
  sender.connect(acceptor.local_endpoint());
  acceptor.accept(receiver);
  sender.set_option(asio::ip::tcp::no_delay(true));
  auto corked = [&sender] {
    int v = 0;
    socklen_t n = sizeof v;
    ::getsockopt(sender.native_handle(), IPPROTO_TCP, TCP_CORK, &v, &n);
    return v != 0;
  };
  net::tcp_cork cork(sender);
  cork.hold(true);
  BOOST_TEST(corked());
  for (const char* s : {"one ", "two ", "three"}) asio::write(sender, asio::buffer(std::string(s)));
  cork.hold(false);
  BOOST_TEST(!corked());
  std::string got(13, '\0');
  asio::read(receiver, asio::buffer(got));
  BOOST_TEST(got == "one two three");
}
#endif

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
