#define BOOST_TEST_MODULE lifecycle
#include "lifecycle/cancellation_tree.hpp"
#include "lifecycle/coordinator.hpp"
#include "lifecycle/task_group.hpp"
#include "support/adaptive_mutex.hpp"
#include "support/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

namespace asio = boost::asio;
using namespace quiesce::lifecycle;
using namespace std::chrono_literals;

namespace {
// Waits on a timer that only cancellation ends; reports how it ended.
asio::awaitable<void> wait_forever(bool opt_in_partial, std::string& ended_by) {
  if (opt_in_partial)
    co_await asio::this_coro::reset_cancellation_state(asio::enable_partial_cancellation());
  asio::steady_timer t(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
  auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  ended_by = ec == asio::error::operation_aborted ? "cancelled" : "expired";
}
}  // namespace

BOOST_AUTO_TEST_CASE(partial_cancellation_reaches_only_children_that_opt_in) {
  asio::io_context io;
  task_group group("g");
  std::string acceptor, session;
  auto s1 = asio::make_strand(io), s2 = asio::make_strand(io);
  group.spawn(s1, wait_forever(true, acceptor));
  group.spawn(s2, wait_forever(false, session));
  io.run_for(20ms);
  BOOST_TEST(group.size() == 2u);
  group.emit(asio::cancellation_type::partial);
  io.run_for(20ms);
  BOOST_TEST(acceptor == "cancelled");
  BOOST_TEST(session.empty());
  BOOST_TEST(group.size() == 1u);
  group.emit(asio::cancellation_type::terminal);
  io.run_for(20ms);
  BOOST_TEST(session == "cancelled");
  BOOST_TEST(group.size() == 0u);
}

// Closing admission stops the public acceptors and nothing else, even a session or a worker that
// would honour partial cancellation (drain() used to emit it to them too).
BOOST_AUTO_TEST_CASE(closing_admission_reaches_only_the_listeners) {
  asio::io_context io;
  cancellation_tree tree;
  std::string listener, session, worker, admin;
  auto spawn = [&io](task_group& g, std::string& ended) {
    auto s = asio::make_strand(io);
    g.spawn(s, wait_forever(true, ended));
  };
  spawn(tree.listeners, listener);
  spawn(tree.connections, session);
  spawn(tree.workers, worker);
  spawn(tree.admin, admin);
  io.run_for(20ms);
  tree.drain();
  io.run_for(20ms);
  BOOST_TEST(listener == "cancelled");
  BOOST_TEST(session.empty());
  BOOST_TEST(worker.empty());
  BOOST_TEST(admin.empty());
  tree.stop();
  io.run_for(20ms);
  BOOST_TEST(session == "cancelled");
  BOOST_TEST(worker == "cancelled");
  BOOST_TEST(admin == "cancelled");
}

// What the log writes to stdout while `f` runs.
template <typename F>
std::string stdout_of(F f) {
  std::fflush(stdout);
  char path[] = "/tmp/quiesce-log-XXXXXX";
  int file = mkstemp(path);
  int saved = dup(STDOUT_FILENO);
  dup2(file, STDOUT_FILENO);
  f();
  std::fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  close(file);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  unlink(path);
  return text.str();
}

// A child spawned without a handler of its own: what escapes it is logged with the group's
// name (it used to vanish in `detached`), and it leaves the group as any other child.
BOOST_AUTO_TEST_CASE(an_exception_that_escapes_a_child_is_logged_with_its_group) {
  asio::io_context io;
  task_group group("connections");
  auto out = stdout_of([&] {
    auto s = asio::make_strand(io);
    group.spawn(
        s, []() -> asio::awaitable<void> { throw std::runtime_error("set_option: bad socket"); });
    io.run();
  });
  BOOST_TEST(out.find(R"("msg":"coroutine failed")") != std::string::npos, out);
  BOOST_TEST(out.find(R"("group":"connections")") != std::string::npos, out);
  BOOST_TEST(out.find(R"("error":"set_option: bad socket")") != std::string::npos, out);
  BOOST_TEST(group.size() == 0u);
}

// An admin session accepted just as the server stops joins after the emit: it must be told too,
// not left to hold the exit for --close-timeout.
BOOST_AUTO_TEST_CASE(a_child_that_joins_after_an_emit_is_told_at_once) {
  asio::io_context io;
  task_group group("admin");
  std::string early, late;
  group.spawn(asio::make_strand(io), wait_forever(false, early));
  io.run_for(20ms);
  group.emit(asio::cancellation_type::terminal);
  group.spawn(asio::make_strand(io), wait_forever(false, late));
  io.run_for(50ms);
  BOOST_TEST(early == "cancelled");
  BOOST_TEST(late == "cancelled");
  BOOST_TEST(group.size() == 0u);
}

BOOST_AUTO_TEST_CASE(wait_empty_completes_when_the_last_child_ends) {
  asio::io_context io;
  task_group group("g");
  std::string ended;
  bool waited = false;
  auto s = asio::make_strand(io);
  group.spawn(s, wait_forever(false, ended));
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await group.wait_empty();
        waited = true;
      },
      asio::detached);
  io.run_for(20ms);
  BOOST_TEST(!waited);
  group.emit(asio::cancellation_type::terminal);
  io.run_for(50ms);
  BOOST_TEST(waited);
}

BOOST_AUTO_TEST_CASE(a_child_destroyed_unrun_after_its_group_is_gone_leaves_safely) {
  // The teardown order of a drain that timed out: the group (in the coordinator) goes first,
  // the io_context then destroys the coroutine it never finished. ASan catches a dangling group.
  std::string ended;
  {
    asio::io_context io;
    auto group = std::make_unique<task_group>("g");
    auto s = asio::make_strand(io);
    group->spawn(s, wait_forever(false, ended));
    io.run_for(20ms);
    BOOST_TEST(group->size() == 1u);
    group.reset();
  }
  BOOST_TEST(ended.empty());  // destroyed, never resumed
}

// The task service's lock: two threads that each add under it lose no increment, and a thread
// that finds it taken waits (try_lock fails) until it is released.
BOOST_AUTO_TEST_CASE(an_adaptive_mutex_excludes_other_threads) {
  quiesce::support::adaptive_mutex m;
  long counter = 0;
  constexpr long per_thread = 200'000;
  auto add = [&] {
    for (long i = 0; i < per_thread; ++i) {
      std::lock_guard lock(m);
      ++counter;
    }
  };
  std::thread a(add), b(add);
  a.join();
  b.join();
  BOOST_TEST(counter == 2 * per_thread);

  m.lock();
  bool taken_elsewhere = true;
  std::thread([&] { taken_elsewhere = !m.try_lock(); }).join();
  BOOST_TEST(taken_elsewhere);
  m.unlock();
  BOOST_TEST(m.try_lock());
  m.unlock();
}

BOOST_AUTO_TEST_CASE(phase_names_and_clock) {
  BOOST_TEST(to_string(phase::draining) == "draining");
  BOOST_TEST(to_string(phase::terminating) == "terminating");
  phase_state s;
  BOOST_TEST(!s.draining());
  BOOST_TEST(!s.until_deadline().has_value());
  auto now = phase_state::clock::now();
  s.start_clock(now, now + 10s);
  s.set(phase::draining);
  BOOST_TEST(s.draining());
  BOOST_TEST(std::chrono::duration_cast<std::chrono::seconds>(*s.until_deadline()).count() <= 10);
}

namespace {
struct recorded {
  std::vector<std::string> calls;
};

drain_hooks hooks_for(recorded& r, asio::steady_timer& work) {
  return drain_hooks{
      .stop_admission = [&r] { r.calls.push_back("stop_admission"); },
      .work_done = [&r, &work]() -> asio::awaitable<void> {
        auto [ec] = co_await work.async_wait(asio::as_tuple(asio::use_awaitable));
        if (!ec) r.calls.push_back("work_done");
      },
      .interrupt_queued = [&r]() -> asio::awaitable<void> {
        r.calls.push_back("interrupt_queued");
        co_return;
      },
      .forcing = [&r] { r.calls.push_back("forcing"); },
      .close_streams = [&r](std::chrono::milliseconds) -> asio::awaitable<void> {
        r.calls.push_back("close_streams");
        co_return;
      },
      .counts = [] { return boost::json::object{}; },
  };
}
}  // namespace

BOOST_AUTO_TEST_CASE(sigterm_drains_in_order_and_exits_zero) {
  asio::io_context io;
  recorded r;
  asio::steady_timer work(io, 100ms);
  coordinator c(io.get_executor(), {0ms, 0ms, 500ms, 5000ms}, hooks_for(r, work));
  int code = -1;
  asio::co_spawn(c.executor(), c.run(), [&](std::exception_ptr, int rc) { code = rc; });
  io.run_for(10ms);
  std::raise(SIGTERM);
  io.run_for(2s);
  BOOST_TEST(code == exit_drained);
  std::vector<std::string> want{"stop_admission", "work_done", "close_streams"};
  BOOST_TEST(r.calls == want, boost::test_tools::per_element());
  BOOST_TEST((c.state().current() == phase::stopped));
}

BOOST_AUTO_TEST_CASE(deadline_interrupts_and_exits_non_zero) {
  asio::io_context io;
  recorded r;
  asio::steady_timer work(io, 1h);  // work that would outlive the deadline
  coordinator c(io.get_executor(), {0ms, 0ms, 200ms, 150ms}, hooks_for(r, work));
  int code = -1;
  asio::co_spawn(c.executor(), c.run(), [&](std::exception_ptr, int rc) { code = rc; });
  io.run_for(10ms);
  std::raise(SIGTERM);
  io.run_for(2s);
  BOOST_TEST(code == exit_forced);
  std::vector<std::string> want{"stop_admission", "forcing", "interrupt_queued", "close_streams"};
  BOOST_TEST(r.calls == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(second_signal_forces_at_once) {
  asio::io_context io;
  recorded r;
  asio::steady_timer work(io, 1h);
  coordinator c(io.get_executor(), {0ms, 0ms, 200ms, 60'000ms}, hooks_for(r, work));
  int code = -1;
  asio::co_spawn(c.executor(), c.run(), [&](std::exception_ptr, int rc) { code = rc; });
  io.run_for(10ms);
  std::raise(SIGTERM);
  io.run_for(50ms);
  BOOST_TEST(code == -1);
  std::raise(SIGINT);
  io.run_for(1s);
  BOOST_TEST(code == exit_forced);
}
