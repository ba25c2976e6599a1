// event_count: a notify is never lost, notify_one wakes one waiter, a cancelled waiter is
// forgotten, and a waiter is destroyed with its io_context as the context's own operations are.
#include "lifecycle/event_count.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <memory>

namespace asio = boost::asio;
using quiesce::lifecycle::event_count;
using namespace std::chrono_literals;

namespace {
// A coroutine on `io` that waits once on `ec`, then sets `woke`.
void wait_once(asio::io_context& io, event_count& ec, bool& woke) {
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await ec.wait(ec.prepare_wait());
        woke = true;
      },
      asio::detached);
}
}  // namespace

BOOST_AUTO_TEST_CASE(event_count_never_loses_a_notify_between_prepare_and_wait) {
  asio::io_context io;
  event_count ec;
  bool woke = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto key = ec.prepare_wait();
        ec.notify_all();  // lands before the wait starts
        co_await ec.wait(key);
        woke = true;
      },
      asio::detached);
  io.run_for(50ms);
  BOOST_TEST(woke);
}

// One notify_one() for one change: one of two waiters wakes, the other waits on until the next.
BOOST_AUTO_TEST_CASE(event_count_notify_one_wakes_one_waiter) {
  asio::io_context io;
  event_count ec;
  int woke = 0;
  for (int i = 0; i < 2; ++i)
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          co_await ec.wait(ec.prepare_wait());
          ++woke;
        },
        asio::detached);
  io.run_for(20ms);
  BOOST_TEST(woke == 0);
  ec.notify_one();
  io.run_for(20ms);
  BOOST_TEST(woke == 1);
  ec.notify_one();
  io.run_for(20ms);
  BOOST_TEST(woke == 2);
  ec.notify_one();  // nobody waits: nothing happens, and nothing is kept for later
  io.run_for(20ms);
  BOOST_TEST(woke == 2);
}

// A waiter cancelled while it waits ends at once with operation_aborted, and is no longer
// counted: the next notify_one() wakes the waiter that is left.
BOOST_AUTO_TEST_CASE(event_count_cancelled_waiter_throws_and_is_forgotten) {
  asio::io_context io;
  event_count ec;
  asio::cancellation_signal cancel;
  bool aborted = false, other_woke = false;
  wait_once(io, ec, other_woke);
  io.run_for(20ms);
  // The latest waiter, the one notify_one() would pick, is the one cancelled.
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await ec.wait_until([] { return false; });
        } catch (const boost::system::system_error& e) {
          aborted = e.code() == asio::error::operation_aborted;
        }
      },
      asio::bind_cancellation_slot(cancel.slot(), asio::detached));
  io.run_for(20ms);
  cancel.emit(asio::cancellation_type::terminal);
  io.run_for(20ms);
  BOOST_TEST(aborted);
  BOOST_TEST(!other_woke);
  ec.notify_one();  // the cancelled waiter is gone: this one is for the other
  io.run_for(20ms);
  BOOST_TEST(other_woke);
}

// A coroutine that waits on an event_count it holds itself (through a shared object), and that
// nothing wakes or cancels, goes with its io_context, as one waiting on a timer would: neither
// the coroutine nor what it holds is leaked.
BOOST_AUTO_TEST_CASE(event_count_waiter_that_holds_its_event_count_goes_with_its_io_context) {
  struct holder {
    event_count ec;
  };
  std::weak_ptr<holder> watch;
  {
    asio::io_context io;
    auto h = std::make_shared<holder>();
    watch = h;
    asio::co_spawn(
        io,
        [h = std::move(h)]() -> asio::awaitable<void> {
          co_await h->ec.wait(h->ec.prepare_wait());
        },
        asio::detached);
    io.run_for(20ms);
    BOOST_TEST(!watch.expired());  // it waits
  }
  BOOST_TEST(watch.expired());
}

// An event_count that outlives its waiter's io_context: the waiter went with the context, and a
// later notify finds nothing to resume (nothing is posted to the dead context).
BOOST_AUTO_TEST_CASE(event_count_notify_after_the_waiters_io_context_is_gone_does_nothing) {
  event_count ec;
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  {
    asio::io_context io;
    asio::co_spawn(
        io,
        [&ec, alive = std::move(alive)]() -> asio::awaitable<void> {
          co_await ec.wait(ec.prepare_wait());
        },
        asio::detached);
    io.run_for(20ms);
  }
  BOOST_TEST(watch.expired());
  ec.notify_all();  // a post to the dead context here is a use after free (the asan preset)
  ec.notify_one();
}

// notify_one() wakes a waiter that can run: one whose io_context has gone is skipped, though it
// was the latest to wait.
BOOST_AUTO_TEST_CASE(event_count_notify_one_skips_a_waiter_whose_io_context_is_gone) {
  event_count ec;
  asio::io_context live;
  bool woke = false;
  wait_once(live, ec, woke);
  live.run_for(20ms);
  {
    asio::io_context gone;
    asio::co_spawn(
        gone, [&]() -> asio::awaitable<void> { co_await ec.wait(ec.prepare_wait()); },
        asio::detached);
    gone.run_for(20ms);
  }
  ec.notify_one();
  live.run_for(20ms);
  BOOST_TEST(woke);
}
