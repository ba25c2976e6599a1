// A stream's send side past its outbox (outbox_test.cpp): the response head, the client's inbox,
// which gathers deliveries from any thread for its strand, the fanout, and a batch framed once for
// the clients that take all of it.
#define BOOST_TEST_MODULE net
#include "net/http.hpp"
#include "net/outbox.hpp"
#include "outbox_probe.hpp"
#include "stream/stream_fanout.hpp"
#include "stream/stream_hub.hpp"

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
#include <functional>
#include <future>
#include <optional>
#include <sstream>
#include <thread>

namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using namespace quiesce;

using namespace net_test;

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

// An event with no task (a gap: events this replica never read) is for every stream, also one
// that follows named tasks only.
BOOST_AUTO_TEST_CASE(a_client_that_follows_named_tasks_still_gets_a_gap) {
  asio::io_context io;
  auto f = std::make_shared<stream::stream_fanout>(asio::make_strand(io));
  auto c = std::make_shared<stream::stream_client>(f, "c", std::make_shared<net::send_limit>(10));
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
  auto f = std::make_shared<stream::stream_fanout>(io.get_executor());
  auto limit = std::make_shared<net::send_limit>(100);
  auto all = std::make_shared<stream::stream_client>(f, "all", limit);
  auto named = std::make_shared<stream::stream_client>(f, "named", limit);
  auto late = std::make_shared<stream::stream_client>(f, "late", limit);
  auto gone = std::make_shared<stream::stream_client>(f, "gone", limit);
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
  auto frames = [&io](stream::stream_client& c) { return drain(io, c.out()).first; };
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
  auto f = std::make_shared<stream::stream_fanout>(strand);
  auto c = std::make_shared<stream::stream_client>(f, "c", std::make_shared<net::send_limit>(n));
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

  auto slow_fanout = std::make_shared<stream::stream_fanout>(strand);
  auto slow = std::make_shared<stream::stream_client>(slow_fanout, "slow",
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
  auto f = std::make_shared<stream::stream_fanout>(io.get_executor());
  auto c = std::make_shared<stream::stream_client>(f, "c", std::make_shared<net::send_limit>(10));
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
    auto f = std::make_shared<stream::stream_fanout>(io.get_executor(), hold);
    auto c = std::make_shared<stream::stream_client>(f, "c", std::make_shared<net::send_limit>(10));
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

// Clients of `f` (a fanout on `io`), each added on the fanout's thread, as a stream's start does.
std::vector<std::shared_ptr<stream::stream_client>> joined(
    asio::io_context& io, const std::shared_ptr<stream::stream_fanout>& f,
    const std::shared_ptr<const net::send_limit>& limit, std::vector<std::string> ids,
    const std::function<void(stream::stream_client&)>& before = {}) {
  std::vector<std::shared_ptr<stream::stream_client>> out;
  for (auto& id : ids) {
    out.push_back(std::make_shared<stream::stream_client>(f, std::move(id), limit));
    if (before) before(*out.back());
  }
  asio::post(io, [&] {
    for (auto& c : out) f->add(c);
  });
  io.run();
  io.restart();
  return out;
}

// The outbox entries one take of `batch` leaves with each client: a framed run shared by the
// clients that want every event, each event's text for the others.
BOOST_AUTO_TEST_CASE(a_batch_is_framed_once_for_the_clients_that_want_all_of_it) {
  asio::io_context io(1);
  auto f = std::make_shared<stream::stream_fanout>(io.get_executor());
  auto clients = joined(io, f, std::make_shared<net::send_limit>(100),
                        {"one", "two", "named", "replayed"}, [](stream::stream_client& c) {
                          if (c.id() == "named") c.follow({"a"});
                          if (c.id() == "replayed") c.seen_through(2);  // into the batch
                        });
  for (std::uint64_t seq = 1; seq <= 3; ++seq) f->deliver(event(seq, seq == 2 ? "b" : "a"));
  io.run();
  io.restart();
  std::vector<net::outbox::batch> took(4);
  for (std::size_t i = 0; i < clients.size(); ++i) clients[i]->out().take(took[i]);
  for (auto& b : {took[0], took[1]}) {
    BOOST_TEST_REQUIRE(b.frames.size() == 1u);
    BOOST_TEST(b.frames[0].framed);
    BOOST_TEST(b.frames[0].frames == 3u);
    BOOST_TEST(texts_of(*b.frames[0].bytes) == (std::vector<std::string>{"1", "2", "3"}),
               boost::test_tools::per_element());
  }
  BOOST_TEST(took[0].frames[0].bytes.get() == took[1].frames[0].bytes.get(), "framed once");
  BOOST_TEST_REQUIRE(took[2].frames.size() == 2u);  // 1 and 3, each its text
  BOOST_TEST_REQUIRE(took[3].frames.size() == 1u);  // 3 only
  for (auto& b : {took[2], took[3]})
    for (const auto& q : b.frames) BOOST_TEST(!q.framed);
  BOOST_TEST(*took[2].frames[1].bytes == "3");
  BOOST_TEST(*took[3].frames[0].bytes == "3");
  for (auto& c : clients) f->remove(*c);
}

// A framed batch counts against the send limit as its frames and texts would: one that reaches
// the limit is pushed frame by frame instead, and the client is closed 1013 exactly when it was
// before (a frame is refused once the queue holds the limit, in frames or in bytes).
BOOST_AUTO_TEST_CASE(a_framed_batch_is_held_to_the_send_limit_frame_by_frame) {
  struct limits {
    std::size_t frames, bytes;
    bool overflows;
  };
  const auto any = net::send_limit::no_byte_limit;
  for (auto l :
       {limits{3, any, false}, limits{2, any, true}, limits{100, 3, false}, limits{100, 2, true}}) {
    asio::io_context io(1);
    auto f = std::make_shared<stream::stream_fanout>(io.get_executor());
    int overflows = 0;
    auto c = joined(io, f, std::make_shared<net::send_limit>(l.frames, l.bytes), {"c"},
                    [&overflows](stream::stream_client& c) {
                      c.on_overflow = [&overflows] { ++overflows; };
                    })[0];
    for (std::uint64_t seq = 1; seq <= 3; ++seq) f->deliver(event(seq, "a"));  // 1 byte each
    io.run();
    io.restart();
    BOOST_TEST(overflows == (l.overflows ? 1 : 0), l.frames << " frames, " << l.bytes << " bytes");
    BOOST_TEST(c->out().waiting() == (l.overflows ? 0u : 3u));
    BOOST_TEST(c->out().closing() == l.overflows);
    f->remove(*c);
  }
}

// Whether a client wants all of a batch is decided by the batch's lowest seq, not its first: a
// client whose replay went up to 2 takes none of 1 and 2, whatever their order.
BOOST_AUTO_TEST_CASE(a_framed_batch_goes_only_to_clients_that_saw_none_of_it) {
  asio::io_context io(1);
  auto f = std::make_shared<stream::stream_fanout>(io.get_executor());
  auto clients = joined(io, f, std::make_shared<net::send_limit>(100), {"fresh", "replayed"},
                        [](stream::stream_client& c) {
                          if (c.id() == "replayed") c.seen_through(2);
                        });
  for (std::uint64_t seq : {3u, 1u, 2u}) f->deliver(event(seq, "a"));
  io.run();
  io.restart();
  std::vector<net::outbox::batch> took(2);
  for (std::size_t i = 0; i < clients.size(); ++i) clients[i]->out().take(took[i]);
  BOOST_TEST_REQUIRE(took[0].frames.size() == 1u);
  BOOST_TEST(took[0].frames[0].framed);
  BOOST_TEST_REQUIRE(took[1].frames.size() == 1u);
  BOOST_TEST(!took[1].frames[0].framed);
  BOOST_TEST(*took[1].frames[0].bytes == "3");
  for (auto& c : clients) f->remove(*c);
}
