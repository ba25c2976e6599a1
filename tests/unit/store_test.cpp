// The sqlite journal on real files: a new database, what survives a reopen, leases, retention,
// and the files it must refuse.
#define BOOST_TEST_MODULE store
#include "store_fixture.hpp"

using namespace store_test;

BOOST_AUTO_TEST_CASE(an_empty_directory_gets_the_schema_and_one_epoch_for_good) {
  data_dir d;
  std::string epoch;
  {
    sqlite_journal j(settings(d));
    auto st = j.load();
    epoch = st.epoch;
    BOOST_TEST(epoch.size() == 36u);
    BOOST_TEST(st.last_seq == 0u);
    BOOST_TEST(st.tasks.empty());
  }
  BOOST_TEST(query(d.db(), "PRAGMA user_version") == "4");
  BOOST_TEST(query(d.db(), "PRAGMA journal_mode") == "wal");
  sqlite_journal again(settings(d));
  BOOST_TEST(again.load().epoch == epoch);
}

BOOST_AUTO_TEST_CASE(changes_survive_a_reopen_in_order_and_seq_goes_on) {
  data_dir d;
  auto done = new_task("key-1");
  auto queued = new_task();
  std::string epoch;
  {
    running_journal r(settings(d));
    epoch = r.start().epoch;
    BOOST_TEST(r.store(done));
    BOOST_TEST(r.store(queued));
    done.move_to(task_status::running);
    BOOST_TEST(r.store(done));
    done.progress = 0.5;
    BOOST_TEST(r.store(done));
    done.result = {{"slept", 1.5}};
    done.move_to(task_status::succeeded);
    BOOST_TEST(r.store(done));
    BOOST_TEST(r.delivered.size() == 5u);
    BOOST_TEST(r.delivered.back()->seq == 5u);
  }
  running_journal r(settings(d));
  auto st = r.start();
  BOOST_TEST(st.epoch == epoch);
  BOOST_TEST(st.last_seq == 5u);
  BOOST_REQUIRE(st.tasks.size() == 2u);
  // Finished ones first, then the rest in the order they were created.
  BOOST_TEST(st.tasks[0].id == done.id);
  BOOST_TEST((st.tasks[0].status == task_status::succeeded));
  BOOST_TEST(st.tasks[0].attempt == 1);
  BOOST_TEST(st.tasks[0].progress == 1.0);
  BOOST_TEST(boost::json::serialize(st.tasks[0].result) == R"({"slept":1.5E0})");
  BOOST_TEST(*st.tasks[0].idempotency_key == "key-1");
  BOOST_TEST(st.tasks[0].params.at("seconds").as_double() == 1.5);
  BOOST_TEST(st.tasks[0].started_at.has_value());
  BOOST_TEST(st.tasks[0].finished_at.has_value());
  BOOST_TEST((st.tasks[1].status == task_status::queued));
  BOOST_REQUIRE(st.events.size() == 5u);
  for (std::size_t i = 0; i < 5; ++i) BOOST_TEST(st.events[i]->seq == i + 1);
  BOOST_TEST(st.events[4]->text.find("\"succeeded\"") != std::string::npos);
  // The next process numbers on from there.
  queued.move_to(task_status::running);
  BOOST_TEST(r.store(queued));
  BOOST_TEST(r.delivered.back()->seq == 6u);
}

BOOST_AUTO_TEST_CASE(a_running_task_holds_a_lease_that_is_renewed_and_released) {
  data_dir d;
  auto t = new_task();
  auto s = settings(d, 100, 300ms);
  std::int64_t first = 0;
  {
    running_journal r(s);
    r.start();
    r.store(t);
    t.move_to(task_status::running);
    r.store(t);
    std::this_thread::sleep_for(50ms);
  }
  BOOST_TEST(query(d.db(), "SELECT lease_owner FROM tasks") == s.owner);
  first = std::stoll(query(d.db(), "SELECT lease_expires_ms FROM tasks"));
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  BOOST_TEST(first > now);  // not expired: its owner was alive a moment ago
  BOOST_TEST(first <= now + 300);
  {
    running_journal r(s);
    r.start();
    std::this_thread::sleep_for(450ms);  // more than a renewal period (lease / 3)
  }
  BOOST_TEST(std::stoll(query(d.db(), "SELECT lease_expires_ms FROM tasks")) > first + 100);
  {
    running_journal r(s);
    r.start();
    t.move_to(task_status::succeeded);
    r.store(t);
  }
  BOOST_TEST(query(d.db(), "SELECT coalesce(lease_owner, 'none') FROM tasks") == "none");
}

BOOST_AUTO_TEST_CASE(finished_tasks_past_the_retention_are_forgotten_with_their_keys) {
  data_dir d;
  std::vector<task_record> ts;
  {
    running_journal r(settings(d, 2));
    r.start();
    for (int i = 0; i < 3; ++i) {
      ts.push_back(new_task("key-" + std::to_string(i)));
      r.store(ts.back());
      ts.back().move_to(task_status::cancelled);
      r.store(ts.back());
    }
  }
  {
    sqlite_journal j(settings(d, 2));
    auto st = j.load();
    BOOST_REQUIRE(st.tasks.size() == 2u);
    BOOST_TEST(st.tasks[0].id == ts[1].id);
    BOOST_TEST(st.tasks[1].id == ts[2].id);
  }
  BOOST_TEST(query(d.db(), "SELECT count(*) FROM tasks WHERE idempotency_key = 'key-0'") == "0");
}

BOOST_AUTO_TEST_CASE(a_second_process_on_the_same_directory_is_refused) {
  data_dir d;
  sqlite_journal first(settings(d));
  BOOST_TEST(refused_with(d, "another process"));
}

BOOST_AUTO_TEST_CASE(a_file_that_is_not_a_database_is_refused_and_left_as_it_is) {
  data_dir d;
  const std::string garbage(8192, 'x');
  std::ofstream(d.db()) << garbage;
  BOOST_TEST(refused_with(d, "not a database"));
  std::ifstream in(d.db());
  std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  BOOST_TEST((after == garbage));
}

BOOST_AUTO_TEST_CASE(a_missing_directory_is_refused_and_not_created) {
  data_dir d;
  auto s = settings(d);
  s.data_dir = d.path / "missing";
  try {
    sqlite_journal j(s);
    BOOST_FAIL("opened");
  } catch (const storage_error& e) {
    BOOST_TEST(e.file == s.data_dir.string());
  }
  BOOST_TEST(!fs::exists(s.data_dir));
}
