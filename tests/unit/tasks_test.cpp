// Task records, ids, the event bus and the memory store (task_service_test.cpp: the queue).
#define BOOST_TEST_MODULE tasks
#include "collecting_sink.hpp"
#include "support/json_text.hpp"
#include "tasks/event_bus.hpp"
#include "tasks/memory_task_store.hpp"
#include "tasks/task.hpp"
#include "tasks/task_json.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <set>
#include <string_view>
#include <vector>

using namespace quiesce::tasks;

BOOST_AUTO_TEST_CASE(state_machine_allows_only_forward_moves) {
  BOOST_TEST(can_move(task_status::queued, task_status::running));
  BOOST_TEST(can_move(task_status::queued, task_status::cancelled));
  BOOST_TEST(can_move(task_status::running, task_status::interrupted));
  BOOST_TEST(!can_move(task_status::running, task_status::queued));
  BOOST_TEST(!can_move(task_status::succeeded, task_status::running));
  BOOST_TEST(!can_move(task_status::cancelled, task_status::succeeded));
  task_record t;
  t.id = "x";
  t.move_to(task_status::running);
  BOOST_TEST(t.started_at.has_value());
  t.move_to(task_status::succeeded);
  BOOST_TEST(t.message == "Task x processed");
  BOOST_TEST(t.progress == 1.0);
  BOOST_CHECK_THROW(t.move_to(task_status::failed), std::logic_error);
}

BOOST_AUTO_TEST_CASE(task_ids_are_distinct_version_4_uuids_across_refills) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {  // the random bytes come 256 ids at a time: four refills
    const std::string id = new_task_id();
    BOOST_TEST_REQUIRE(id.size() == 36u);
    BOOST_TEST(id[14] == '4');                                                    // version 4
    BOOST_TEST(std::string_view("89ab").find(id[19]) != std::string_view::npos);  // variant
    seen.insert(id);
  }
  BOOST_TEST(seen.size() == 1000u);
}

// The text written straight from a record is the object's text, for every kind of field.
BOOST_AUTO_TEST_CASE(task_text_is_the_text_of_its_json_object) {
  using namespace std::chrono;
  std::vector<task_record> records;
  task_record t;
  t.id = new_task_id();
  t.kind = "sleep";
  t.message = status_message(t.id, task_status::queued);
  t.created_at = sys_days{2026y / December / 3} + 12h + 34min + 56s + 789ms;
  records.push_back(t);  // queued, no parameters, no times but its creation
  t.params =
      boost::json::parse(
          R"({"seconds":1.5,"note":"a \"quoted\"\n\tline \u0001 caf\u00e9","n":[1,-2,3e300]})")
          .as_object();
  t.move_to(task_status::running, t.created_at + 1500ms);
  t.progress = 0.37;
  records.push_back(t);
  auto done = t;
  done.move_to(task_status::succeeded, t.created_at + 3s);
  done.result = boost::json::parse(R"({"slept":1.5,"ok":true,"none":null})");
  records.push_back(done);
  auto failed = t;
  failed.error = "boom: \"bad\" \\ path\r\n";
  failed.move_to(task_status::failed, t.created_at + 2s);
  records.push_back(failed);
  auto again = t;
  again.requeue("the process running it stopped");
  records.push_back(again);

  for (const auto& r : records) {
    const auto expected = quiesce::support::json_text(to_json(r));
    BOOST_TEST(task_text(r) == expected);
    auto open = open_task_text(r);
    BOOST_TEST(open + "}" == expected);
  }
}

BOOST_AUTO_TEST_CASE(bus_numbers_events_in_order_and_replays_since) {
  event_bus bus("E", 100);
  for (int i = 0; i < 5; ++i) bus.publish("t" + std::to_string(i), {{"type", "task"}});
  auto sink = std::make_shared<collecting_sink>();
  auto r = bus.subscribe(sink, 2, true);
  BOOST_TEST(!r.gap);
  BOOST_TEST(r.last_seq == 5u);
  BOOST_REQUIRE(r.events.size() == 3u);
  BOOST_TEST(r.events[0]->seq == 3u);
  bus.publish("t5", {{"type", "task"}});
  BOOST_REQUIRE(sink->got.size() == 1u);
  BOOST_TEST(sink->got[0]->seq == 6u);
  auto v = boost::json::parse(sink->got[0]->text);
  BOOST_TEST(v.at("seq").to_number<std::uint64_t>() == 6u);
  bus.unsubscribe(sink.get());
  bus.publish("t6", {});
  BOOST_TEST(sink->got.size() == 1u);
}

BOOST_AUTO_TEST_CASE(bus_unsubscribes_any_sink_and_keeps_delivering_to_the_rest) {
  event_bus bus("E", 100);
  std::vector<std::shared_ptr<collecting_sink>> sinks;
  for (int i = 0; i < 4; ++i) {
    sinks.push_back(std::make_shared<collecting_sink>());
    bus.subscribe(sinks.back(), std::nullopt, true);
  }
  bus.unsubscribe(sinks[1].get());  // from the middle
  bus.unsubscribe(sinks[3].get());  // the last
  bus.unsubscribe(sinks[3].get());  // twice: nothing happens
  bus.publish("t", {{"type", "task"}});
  std::vector<std::size_t> counts;
  for (auto& s : sinks) counts.push_back(s->got.size());
  BOOST_TEST(counts == (std::vector<std::size_t>{1, 0, 1, 0}), boost::test_tools::per_element());
  bus.unsubscribe(sinks[0].get());
  bus.publish("t", {{"type", "task"}});
  BOOST_TEST(sinks[0]->got.size() == 1u);
  BOOST_TEST(sinks[2]->got.size() == 2u);
}

BOOST_AUTO_TEST_CASE(bus_reports_a_gap_when_asked_events_left_the_window) {
  event_bus bus("E", 3);
  for (int i = 0; i < 10; ++i) bus.publish("t", {});
  auto r = bus.subscribe(std::make_shared<collecting_sink>(), 2, true);
  BOOST_TEST(r.gap);
  BOOST_TEST(r.events.size() == 3u);
  BOOST_TEST(r.events.front()->seq == 8u);
  auto fresh = bus.subscribe(std::make_shared<collecting_sink>(), 7, true);
  BOOST_TEST(!fresh.gap);
  auto live_only = bus.subscribe(std::make_shared<collecting_sink>(), std::nullopt, true);
  BOOST_TEST(live_only.events.empty());
  BOOST_TEST(!live_only.gap);
}

BOOST_AUTO_TEST_CASE(bus_replays_whole_window_for_a_foreign_epoch) {
  event_bus bus("E", 100);
  for (int i = 0; i < 4; ++i) bus.publish("t", {});
  auto r = bus.subscribe(std::make_shared<collecting_sink>(), 1000, false);
  BOOST_TEST(r.events.size() == 4u);
  BOOST_TEST(!r.gap);
}

BOOST_AUTO_TEST_CASE(store_finds_tasks_by_idempotency_key_and_counts_status) {
  memory_task_store s(10);
  task_record t;
  t.id = "a";
  t.idempotency_key = "k1";
  s.insert(t);
  BOOST_TEST(s.find_by_idempotency_key("k1")->id == "a");
  BOOST_TEST(!s.find_by_idempotency_key("k2").has_value());
  t.move_to(task_status::running);
  s.update(t);
  auto c = s.count_by_status();
  BOOST_TEST(c[size_t(task_status::queued)] == 0u);
  BOOST_TEST(c[size_t(task_status::running)] == 1u);
}

// Thousands of tasks through a small retention: lookups by a view into a longer text (not a
// std::string of its own) find the kept ones, and the forgotten are gone.
BOOST_AUTO_TEST_CASE(store_looks_ids_up_by_view_through_many_forgotten_tasks) {
  memory_task_store s(100);
  for (int i = 0; i < 5000; ++i) {
    task_record t;
    t.id = "task-" + std::to_string(i);
    s.insert(t);
    t.move_to(task_status::running);
    s.update(t);
    t.move_to(task_status::succeeded);
    s.update(t);
  }
  std::string text = "task-4999 task-4900 task-4899";
  auto view = [&](std::size_t at) { return std::string_view(text).substr(at, 9); };
  BOOST_TEST(s.contains(view(0)));
  BOOST_TEST(s.get(view(0))->id == "task-4999");
  BOOST_TEST(s.get(view(0))->message == "Task task-4999 processed");
  BOOST_TEST(s.contains(view(10)));
  BOOST_TEST(!s.contains(view(20)));  // the 101st newest: forgotten
  BOOST_TEST(!s.get("task-0").has_value());
  BOOST_TEST(s.count_by_status()[size_t(task_status::succeeded)] == 100u);
  BOOST_TEST(status_message("x", task_status::failed) == "Task x failed");
}

BOOST_AUTO_TEST_CASE(store_forgets_the_oldest_finished_task_past_its_retention) {
  memory_task_store s(2);
  std::vector<task_record> ts(4);
  for (int i = 0; i < 4; ++i) {
    ts[i].id = "t" + std::to_string(i);
    ts[i].idempotency_key = "k" + std::to_string(i);
    s.insert(ts[i]);
  }
  for (int i : {0, 1, 2}) {
    ts[i].move_to(task_status::succeeded);
    s.update(ts[i]);
  }
  // t0 finished first and is forgotten with its key; t3 never finished and stays, whatever its age.
  BOOST_TEST(!s.get("t0").has_value());
  BOOST_TEST(!s.find_by_idempotency_key("k0").has_value());
  BOOST_TEST(s.get("t1").has_value());
  BOOST_TEST(s.get("t3").has_value());
  auto c = s.count_by_status();
  BOOST_TEST(c[size_t(task_status::succeeded)] == 2u);
  BOOST_TEST(c[size_t(task_status::queued)] == 1u);
  ts[1].progress = 0.5;  // an update that does not finish it again forgets nothing
  s.update(ts[1]);
  BOOST_TEST(s.get("t2").has_value());
}
