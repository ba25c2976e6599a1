// The queue in this process: admission, workers, cancel, the drain's steps and recovery.
#define BOOST_TEST_MODULE task_service
#include "tasks/task_service.hpp"
#include "collecting_sink.hpp"
#include "lifecycle/task_group.hpp"
#include "tasks/event_bus.hpp"
#include "tasks/memory_task_store.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

namespace asio = boost::asio;
using namespace quiesce::tasks;
using quiesce::lifecycle::strands_of;
using namespace std::chrono_literals;

namespace {
// Runs `io` for `d`; whether the service's drain step wait_idle() completed meanwhile.
bool idle_within(asio::io_context& io, task_service& service, std::chrono::milliseconds d) {
  auto idle = std::make_shared<bool>(false);  // the wait may outlive this call
  asio::co_spawn(
      io,
      [&service, idle]() -> asio::awaitable<void> {
        co_await service.wait_idle();
        *idle = true;
      },
      asio::detached);
  io.run_for(d);
  return *idle;
}
}  // namespace

namespace {
struct service_fixture {
  asio::io_context io;
  asio::thread_pool cpu{1};
  memory_task_store store{1000};
  event_bus bus{"E", 1000};
  std::shared_ptr<collecting_sink> sink = std::make_shared<collecting_sink>();
  quiesce::lifecycle::task_group workers{"workers"};
  task_service service{{2, 3}, builtin_kinds({0.05, 10}), store, bus, cpu};
  service_fixture() { bus.subscribe(sink, std::nullopt, true); }
  ~service_fixture() { cpu.join(); }
  std::vector<std::string> statuses_of(const std::string& id) {
    std::vector<std::string> out;
    for (auto& e : sink->got) {
      auto v = boost::json::parse(e->text);
      // One entry per transition: progress reports repeat `running`.
      bool transition =
          v.at("status").as_string() != "running" || v.at("progress").to_number<double>() == 0.0;
      if (v.at("task_id").as_string() == id && transition)
        out.emplace_back(v.at("status").as_string());
    }
    return out;
  }
};
}  // namespace

BOOST_FIXTURE_TEST_CASE(queue_admits_up_to_capacity_then_refuses, service_fixture) {
  for (int i = 0; i < 3; ++i)
    BOOST_TEST((service.enqueue("sleep", {}, std::nullopt).outcome == admit_outcome::created));
  BOOST_TEST((service.enqueue("sleep", {}, std::nullopt).outcome == admit_outcome::queue_full));
  BOOST_TEST(service.known_counts().queued == 3u);
  service.stop_admission();
  BOOST_TEST((service.enqueue("sleep", {}, std::nullopt).outcome == admit_outcome::closed));
}

BOOST_FIXTURE_TEST_CASE(same_idempotency_key_returns_the_same_task, service_fixture) {
  auto a = service.enqueue("sleep", {}, "key-1");
  auto b = service.enqueue("sleep", {}, "key-1");
  BOOST_TEST((b.outcome == admit_outcome::replayed));
  BOOST_TEST(a.task->id == b.task->id);
  BOOST_TEST(service.known_counts().queued == 1u);
}

BOOST_FIXTURE_TEST_CASE(bad_kind_and_parameters_name_the_field, service_fixture) {
  try {
    service.enqueue("nope", {}, std::nullopt);
    BOOST_FAIL("unknown kind accepted");
  } catch (const bad_parameter& e) {
    BOOST_TEST(e.field == "kind");
  }
  try {
    service.enqueue("sleep", {{"seconds", -1}}, std::nullopt);
    BOOST_FAIL("negative seconds accepted");
  } catch (const bad_parameter& e) {
    BOOST_TEST(e.field == "seconds");
  }
  BOOST_CHECK_THROW(service.enqueue("cpu", {{"iterations", "many"}}, std::nullopt), bad_parameter);
  BOOST_CHECK_THROW(service.enqueue("sleep", {{"secnds", 1}}, std::nullopt), bad_parameter);
}

BOOST_AUTO_TEST_CASE(a_task_whose_kind_throws_ends_failed_and_frees_its_worker) {
  asio::io_context io;
  asio::thread_pool cpu{1};
  memory_task_store store{1000};
  event_bus bus{"E", 1000};
  quiesce::lifecycle::task_group workers{"workers"};
  kind_registry kinds;
  kinds.add({"boom", [](const boost::json::object&) { return boost::json::object{}; },
             [](task_context) -> asio::awaitable<boost::json::value> {
               throw std::runtime_error("boom");
               co_return nullptr;
             }});
  task_service service{{1, 10}, std::move(kinds), store, bus, cpu};
  auto first = service.enqueue("boom", {}, std::nullopt).task->id;
  auto second = service.enqueue("boom", {}, std::nullopt).task->id;  // the same worker, next
  service.stop_admission();
  service.start(strands_of(io), workers);
  BOOST_TEST(idle_within(io, service, 3s));
  for (auto& id : {first, second}) {
    BOOST_TEST((store.get(id)->status == task_status::failed));
    BOOST_TEST(store.get(id)->error.value_or("") == "boom");
  }
  cpu.join();
}

BOOST_FIXTURE_TEST_CASE(workers_drain_the_queue_after_admission_closes, service_fixture) {
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) ids.push_back(service.enqueue("sleep", {}, std::nullopt).task->id);
  ids.push_back(service.enqueue("cpu", {{"iterations", 1000}}, std::nullopt).task->id);
  service.stop_admission();  // admission closed: what was accepted still runs
  service.start(strands_of(io), workers);
  BOOST_TEST(idle_within(io, service, 3s));
  BOOST_TEST(workers.size() == 0u);  // workers stop once the closed queue is empty
  for (auto& id : ids) {
    BOOST_TEST((store.get(id)->status == task_status::succeeded));
    std::vector<std::string> want{"queued", "running", "succeeded"};
    BOOST_TEST(statuses_of(id) == want, boost::test_tools::per_element());
  }
  std::uint64_t last = 0;
  for (auto& e : sink->got) {
    BOOST_TEST(e->seq > last);
    last = e->seq;
  }
}

BOOST_FIXTURE_TEST_CASE(cancel_ends_queued_and_running_tasks, service_fixture) {
  auto running = service.enqueue("sleep", {{"seconds", 5}}, std::nullopt).task->id;
  auto second = service.enqueue("sleep", {{"seconds", 5}}, std::nullopt).task->id;
  auto queued = service.enqueue("sleep", {{"seconds", 5}}, std::nullopt).task->id;
  service.start(strands_of(io), workers);  // two workers: the first two run
  io.run_for(50ms);
  std::vector<cancel_outcome> got;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        got.push_back((co_await service.cancel(queued)).first);
        got.push_back((co_await service.cancel(running)).first);
        got.push_back((co_await service.cancel(running)).first);
        got.push_back((co_await service.cancel("missing")).first);
      },
      asio::detached);
  io.run_for(500ms);
  BOOST_REQUIRE(got.size() == 4u);
  BOOST_TEST((got[0] == cancel_outcome::cancelled));
  BOOST_TEST((got[1] == cancel_outcome::cancelled));
  BOOST_TEST((got[2] == cancel_outcome::already_finished));
  BOOST_TEST((got[3] == cancel_outcome::not_found));
  BOOST_TEST((store.get(queued)->status == task_status::cancelled));
  BOOST_TEST((store.get(running)->status == task_status::cancelled));
  BOOST_TEST((store.get(second)->status == task_status::running));
  // The worker whose task was cancelled goes on: it runs the next task (the other is busy).
  auto next = service.enqueue("sleep", {{"seconds", 0.05}}, std::nullopt).task->id;
  io.run_for(300ms);
  BOOST_TEST((store.get(next)->status == task_status::succeeded));
  workers.emit(asio::cancellation_type::terminal);
  io.run_for(200ms);
  BOOST_TEST((store.get(second)->status == task_status::interrupted));
}

BOOST_FIXTURE_TEST_CASE(interrupt_marks_never_started_tasks, service_fixture) {
  auto id = service.enqueue("sleep", {}, std::nullopt).task->id;
  service.stop_admission();
  asio::co_spawn(io, service.interrupt_queued(), asio::detached);
  io.run();
  BOOST_TEST((store.get(id)->status == task_status::interrupted));
  std::vector<std::string> want{"queued", "interrupted"};
  BOOST_TEST(statuses_of(id) == want, boost::test_tools::per_element());
}

namespace {
// A journal that holds entries until the test says whether they were stored.
struct held_journal : task_journal {
  std::vector<journal_entry> held;
  void append(journal_entry e) override { held.push_back(std::move(e)); }
};
}  // namespace

BOOST_FIXTURE_TEST_CASE(an_admission_that_was_not_stored_is_refused_and_forgotten,
                        service_fixture) {
  held_journal journal;
  bus.attach(journal);
  auto a = service.enqueue("sleep", {}, "key-1");
  BOOST_TEST((a.outcome == admit_outcome::created));
  BOOST_TEST(service.known_counts().queued == 0u);  // not runnable before it is stored
  BOOST_TEST(sink->got.empty());                    // and no client has heard of it
  // A retry with the same key while the first is being stored names the same task, and its
  // answer waits for the same commit.
  auto retry = service.enqueue("sleep", {}, "key-1");
  BOOST_TEST((retry.outcome == admit_outcome::replayed));
  BOOST_TEST(retry.task->id == a.task->id);
  std::optional<bool> stored, retry_stored;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { stored = co_await service.wait_stored(a.task->id); },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        retry_stored = co_await service.wait_stored(retry.task->id);
      },
      asio::detached);
  io.poll();
  BOOST_TEST(!stored.has_value());  // the answer waits for the journal
  BOOST_TEST(!retry_stored.has_value());
  BOOST_REQUIRE(journal.held.size() == 1u);
  bus.deliver({}, journal.held[0].event->seq);  // dropped, as a failed commit drops it
  journal.held[0].on_stored(false);
  io.restart();
  io.run_for(200ms);
  BOOST_TEST((stored == std::optional<bool>(false)));
  BOOST_TEST((retry_stored == std::optional<bool>(false)));
  BOOST_TEST(!store.get(a.task->id).has_value());
  BOOST_TEST(!store.find_by_idempotency_key("key-1").has_value());
  BOOST_TEST(service.known_counts().queued == 0u);
  BOOST_TEST(sink->got.empty());
  // The key is free again: a retry creates the task, and once stored it is queued.
  auto b = service.enqueue("sleep", {}, "key-1");
  BOOST_TEST((b.outcome == admit_outcome::created));
  BOOST_REQUIRE(journal.held.size() == 2u);
  bus.deliver({journal.held[1].event}, journal.held[1].event->seq);
  journal.held[1].on_stored(true);
  BOOST_TEST(service.known_counts().queued == 1u);
  BOOST_TEST(sink->got.size() == 1u);
}

// A stream client hears `queued` before the journal's answer reaches the queue, and may DELETE
// at once: the task is then neither queued nor running (this threw std::out_of_range).
BOOST_FIXTURE_TEST_CASE(a_task_cancelled_while_its_admission_is_stored_ends_cancelled,
                        service_fixture) {
  held_journal journal;
  bus.attach(journal);
  auto id = service.enqueue("sleep", {{"seconds", 5}}, std::nullopt).task->id;
  std::optional<cancel_outcome> outcome;
  std::exception_ptr failure;
  asio::co_spawn(io, service.cancel(id), [&](std::exception_ptr e, auto r) {
    failure = e;
    if (!e) outcome = r.first;
  });
  io.poll();
  BOOST_TEST(!outcome.has_value());  // the answer waits for the admission's commit
  BOOST_REQUIRE(journal.held.size() == 1u);
  bus.deliver({journal.held[0].event}, journal.held[0].event->seq);
  journal.held[0].on_stored(true);
  io.restart();
  io.run_for(200ms);
  BOOST_TEST(!failure);
  BOOST_TEST((outcome == std::optional(cancel_outcome::cancelled)));
  BOOST_TEST((store.get(id)->status == task_status::cancelled));
  BOOST_TEST(service.known_counts().queued == 0u);
}

// After the deadline a durable store keeps unstarted tasks queued for the next process; this
// one neither queues nor runs them, and a DELETE of one still cancels it (it threw).
BOOST_FIXTURE_TEST_CASE(a_task_left_queued_for_a_restart_can_still_be_cancelled, service_fixture) {
  task_service durable{{1, 3, true}, builtin_kinds({0.05, 10}), store, bus, cpu};
  auto running = durable.enqueue("sleep", {{"seconds", 5}}, std::nullopt).task->id;
  auto queued = durable.enqueue("sleep", {{"seconds", 5}}, std::nullopt).task->id;
  durable.start(strands_of(io), workers);
  io.run_for(100ms);
  durable.stop_admission();
  workers.emit(asio::cancellation_type::terminal);
  io.run_for(200ms);
  io.restart();
  asio::co_spawn(io, durable.interrupt_queued(), asio::detached);
  io.run_for(200ms);
  io.restart();
  std::vector<cancel_outcome> got;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        got.push_back((co_await durable.cancel(queued)).first);
        got.push_back((co_await durable.cancel(running)).first);
      },
      [&](std::exception_ptr e) { failure = e; });
  io.run_for(200ms);
  BOOST_TEST(!failure);
  BOOST_REQUIRE(got.size() == 2u);
  for (std::size_t i = 0; i < 2; ++i) BOOST_TEST((got[i] == cancel_outcome::cancelled));
  BOOST_TEST((store.get(queued)->status == task_status::cancelled));
  BOOST_TEST((store.get(running)->status == task_status::cancelled));
}

BOOST_FIXTURE_TEST_CASE(recovery_requeues_a_dead_process_running_task_as_a_retry, service_fixture) {
  task_record was_running;
  was_running.id = "r";
  was_running.kind = "sleep";
  was_running.params = boost::json::object{{"seconds", 0.05}};
  was_running.move_to(task_status::running);
  task_record was_queued;
  was_queued.id = "q";
  was_queued.kind = "sleep";
  was_queued.params = boost::json::object{{"seconds", 0.05}};
  store.insert(was_running);
  store.insert(was_queued);
  service.recover({was_running, was_queued});
  BOOST_TEST(service.known_counts().queued == 2u);
  auto first = boost::json::parse(sink->got.at(0)->text);
  BOOST_TEST(first.at("task_id").as_string() == "r");
  BOOST_TEST(first.at("status").as_string() == "queued");
  BOOST_TEST(first.at("requeued").as_bool());
  service.stop_admission();
  service.start(strands_of(io), workers);
  io.run_for(2s);
  BOOST_TEST((store.get("r")->status == task_status::succeeded));
  BOOST_TEST(store.get("r")->attempt == 2);  // its events say it is a retry
  BOOST_TEST(store.get("q")->attempt == 1);
  auto last = boost::json::parse(sink->got.back()->text);
  BOOST_TEST(last.at("status").as_string() == "succeeded");
}

BOOST_FIXTURE_TEST_CASE(with_a_durable_store_the_deadline_requeues_instead_of_interrupting,
                        service_fixture) {
  task_service durable{{1, 3, true}, builtin_kinds({0.05, 10}), store, bus, cpu};
  auto running = durable.enqueue("sleep", {{"seconds", 5}}, std::nullopt).task->id;
  auto queued = durable.enqueue("sleep", {{"seconds", 5}}, std::nullopt).task->id;
  durable.start(strands_of(io), workers);
  io.run_for(100ms);
  BOOST_TEST((store.get(running)->status == task_status::running));
  durable.stop_admission();
  workers.emit(asio::cancellation_type::terminal);
  io.run_for(200ms);
  io.restart();  // the workers have ended: run_for stopped the context
  asio::co_spawn(io, durable.interrupt_queued(), asio::detached);
  io.run_for(200ms);
  for (auto& id : {running, queued}) {
    BOOST_TEST((store.get(id)->status == task_status::queued));
    bool told = false;
    for (auto& e : sink->got) {
      auto v = boost::json::parse(e->text);
      told |= v.at("task_id").as_string() == id && v.as_object().contains("requeued");
    }
    BOOST_TEST(told);
  }
  BOOST_TEST(store.get(running)->attempt == 1);
}
