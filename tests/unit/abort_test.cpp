// One operation's own cancellation beside its caller's: abort_scope (a loop of operations, one
// coroutine for all of them), the one abort every worker uses.
#include "lifecycle/abort_scope.hpp"
#include "lifecycle/task_group.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <memory>
#include <vector>

namespace asio = boost::asio;
using namespace quiesce::lifecycle;
using namespace std::chrono_literals;

namespace {
// A worker's shape: a loop under one abort_scope that runs hour-long waits one after another,
// each under its own ticket, and records how each ended.
struct scoped_loop {
  std::shared_ptr<abort_scope> scope;
  std::vector<abort_scope::ticket> tickets;  // one per wait started
  std::vector<bool> cancelled;               // one per wait ended
  bool done = false;
};
void spawn_loop(asio::io_context& io, task_group& group, scoped_loop& l) {
  auto strand = asio::make_strand(io);
  l.scope = std::make_shared<abort_scope>(strand);
  auto loop = [](scoped_loop& l) -> asio::awaitable<void> {
    for (;;) {
      l.tickets.push_back(l.scope->begin());
      asio::steady_timer t(co_await asio::this_coro::executor, 1h);
      auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      l.cancelled.push_back(ec == asio::error::operation_aborted);
      if (l.scope->end(l.tickets.back())) co_await asio::this_coro::reset_cancellation_state();
      if (l.scope->caller_cancelled()) co_return;
    }
  };
  group.spawn(strand, [&l, loop]() -> asio::awaitable<void> {
    co_await l.scope->run(loop(l));
    l.done = true;
  });
}
}  // namespace

// A DELETE ends the task under way and the worker takes the next; an abort that comes after its
// task ended touches nothing; the deadline ends the worker and says it was the caller's.
BOOST_AUTO_TEST_CASE(an_abort_scope_ends_one_operation_and_the_loop_goes_on) {
  asio::io_context io;
  task_group group("workers");
  scoped_loop l;
  spawn_loop(io, group, l);
  io.run_for(20ms);
  BOOST_TEST_REQUIRE(l.tickets.size() == 1u);
  l.tickets[0].request_abort();
  l.tickets[0].request_abort();  // twice, as two DELETEs would
  io.run_for(50ms);
  BOOST_TEST_REQUIRE(l.cancelled.size() == 1u);
  BOOST_TEST(l.cancelled[0]);
  BOOST_TEST(l.tickets[0].abort_requested());
  BOOST_TEST_REQUIRE(l.tickets.size() == 2u);  // the loop went on to its next wait
  BOOST_TEST(!l.tickets[1].abort_requested());

  l.tickets[0].request_abort();  // too late: the second wait goes on
  io.run_for(50ms);
  BOOST_TEST(l.cancelled.size() == 1u);
  BOOST_TEST(group.size() == 1u);  // the loop still waits

  group.emit(asio::cancellation_type::terminal);
  io.run_for(50ms);
  BOOST_TEST_REQUIRE(l.cancelled.size() == 2u);
  BOOST_TEST(l.cancelled[1]);
  BOOST_TEST(!l.tickets[1].abort_requested());
  BOOST_TEST(l.scope->caller_cancelled());
  BOOST_TEST(l.done);
  BOOST_TEST(group.size() == 0u);
}

// An abort asked before the operation is awaited is seen by the loop (a task a DELETE found
// before its worker started it), and the caller's cancellation is not cleared by end().
BOOST_AUTO_TEST_CASE(an_abort_scope_keeps_the_callers_cancellation) {
  asio::io_context io;
  task_group group("workers");
  auto strand = asio::make_strand(io);
  auto scope = std::make_shared<abort_scope>(strand);
  bool seen_before = false, refused_after = false;
  group.spawn(strand, [&]() -> asio::awaitable<void> {
    co_await scope->run([&]() -> asio::awaitable<void> {
      auto t = scope->begin();
      t.request_abort();
      seen_before = t.abort_requested();
      group.emit(asio::cancellation_type::terminal);
      asio::steady_timer timer(co_await asio::this_coro::executor, 1h);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      BOOST_TEST(!scope->end(t));  // the caller cancelled: nothing to make anew
      try {
        co_await timer.async_wait(asio::use_awaitable);
      } catch (const boost::system::system_error&) {
        refused_after = true;
      }
    }());
  });
  io.run_for(100ms);
  BOOST_TEST(seen_before);
  BOOST_TEST(refused_after);
  BOOST_TEST(group.size() == 0u);
}
