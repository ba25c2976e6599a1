// The sqlite journal's schema versions: how each older database is migrated with what it holds,
// how events are stored (a commit's in one row) and read back, and versions it must refuse.
#define BOOST_TEST_MODULE store_schema
#include "store_fixture.hpp"

using namespace store_test;

BOOST_AUTO_TEST_CASE(an_empty_file_is_migrated) {
  data_dir d;
  std::ofstream(d.db()).close();  // zero bytes: what `touch` or a failed first start leaves
  sqlite_journal j(settings(d));
  BOOST_TEST(j.load().epoch.size() == 36u);
}

// A database written by the first schema (tasks keyed by their id) keeps its tasks and events.
BOOST_AUTO_TEST_CASE(a_first_version_database_is_migrated_with_its_tasks) {
  data_dir d;
  execute(d.db(), R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE tasks(
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
  progress REAL NOT NULL, message TEXT NOT NULL, created_ms INTEGER NOT NULL,
  started_ms INTEGER, finished_ms INTEGER, result TEXT NOT NULL, error TEXT,
  idempotency_key TEXT, attempt INTEGER NOT NULL, finished_seq INTEGER,
  lease_owner TEXT, lease_expires_ms INTEGER);
CREATE INDEX tasks_by_finish ON tasks(finished_seq) WHERE finished_seq IS NOT NULL;
CREATE TABLE events(seq INTEGER PRIMARY KEY, task_id TEXT NOT NULL, frame TEXT NOT NULL);
INSERT INTO meta VALUES('epoch', 'old-epoch');
INSERT INTO tasks VALUES('b-done', 'sleep', '{"seconds":1}', 'succeeded', 1, 'done', 1000, 1001,
  1002, '{"slept":1}', NULL, 'key-b', 1, 2, NULL, NULL);
INSERT INTO tasks VALUES('a-queued', 'sleep', '{"seconds":2}', 'queued', 0, 'queued', 1003, NULL,
  NULL, 'null', NULL, NULL, 0, NULL, NULL, NULL);
INSERT INTO events VALUES(2, 'b-done', '{"task_id":"b-done","seq":2}');
PRAGMA user_version = 1;
)sql");
  task_record queued;
  {
    running_journal r(settings(d));
    auto st = r.start();
    BOOST_TEST(st.epoch == "old-epoch");
    BOOST_TEST(st.last_seq == 2u);
    BOOST_REQUIRE(st.tasks.size() == 2u);
    BOOST_TEST(st.tasks[0].id == "b-done");
    BOOST_TEST(*st.tasks[0].idempotency_key == "key-b");
    BOOST_TEST(st.tasks[1].id == "a-queued");
    BOOST_TEST(st.tasks[1].params.at("seconds").as_int64() == 2);
    BOOST_REQUIRE(st.events.size() == 1u);
    BOOST_TEST(st.events[0]->seq == 2u);
    BOOST_TEST(st.events[0]->task_id == "b-done");
    queued = st.tasks[1];
    queued.move_to(task_status::running);
    BOOST_TEST(r.store(queued));
  }
  BOOST_TEST(query(d.db(), "PRAGMA user_version") == "4");
  // The task left queued by the old process is written in its row, not in a second one.
  BOOST_TEST(query(d.db(), "SELECT count(*) FROM tasks") == "2");
  BOOST_TEST(query(d.db(), "SELECT status FROM tasks WHERE id = 'a-queued'") == "running");
}

// A commit stores its events together; a reopen still gives exactly the newest retained ones
// (100 here), whichever commits they came in, each with its task.
BOOST_AUTO_TEST_CASE(events_stored_many_per_commit_come_back_the_newest_in_order) {
  data_dir d;
  std::vector<task_record> ts(10);
  {
    running_journal r(settings(d));
    r.start();
    for (auto& t : ts) t = new_task();
    for (int i = 0; i < 250; ++i) {
      auto& t = ts[static_cast<std::size_t>(i) % ts.size()];
      t.progress = i / 250.0;
      r.append(t);
      if (i % 37 == 36) r.wait_stored();  // commits of different sizes, not aligned on 100
    }
    r.wait_stored();
  }
  BOOST_TEST(std::stoi(query(d.db(), "SELECT count(*) FROM event_batches")) < 250);
  sqlite_journal j(settings(d));
  auto st = j.load();
  BOOST_TEST(st.last_seq == 250u);
  BOOST_REQUIRE(st.events.size() == 100u);
  for (std::size_t i = 0; i < 100; ++i) {
    const auto& e = *st.events[i];
    BOOST_TEST(e.seq == 151 + i);
    BOOST_TEST(e.task_id == ts[(150 + i) % ts.size()].id);
    auto frame = boost::json::parse(e.text).as_object();
    BOOST_TEST(frame.at("seq").as_int64() == static_cast<std::int64_t>(e.seq));
    BOOST_TEST(frame.at("task_id").as_string() == e.task_id);
  }
}

// A commit's frames are stored one per line, so a newline in a task's text (an error, a result)
// must reach the row escaped, as JSON has it: each frame comes back whole, with its text intact.
BOOST_AUTO_TEST_CASE(text_with_newlines_comes_back_in_its_own_frame) {
  data_dir d;
  auto t = new_task();
  {
    running_journal r(settings(d));
    r.start();
    t.move_to(task_status::running);
    t.error = "line one\nline two\r\n";
    t.result = boost::json::object{{"out", "a\nb"}};
    t.move_to(task_status::failed);
    for (int i = 0; i < 3; ++i) r.append(t);
    r.wait_stored();
  }
  sqlite_journal j(settings(d));
  auto st = j.load();
  BOOST_REQUIRE(st.events.size() == 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    BOOST_TEST(st.events[i]->seq == i + 1);
    BOOST_TEST(st.events[i]->task_id == t.id);
    auto frame = boost::json::parse(st.events[i]->text).as_object();
    BOOST_TEST(frame.at("error").as_string() == "line one\nline two\r\n");
    BOOST_TEST(frame.at("result").at("out").as_string() == "a\nb");
  }
}

// A database of the second schema (a row per event) keeps its events in the third.
BOOST_AUTO_TEST_CASE(a_second_version_database_keeps_its_events) {
  data_dir d;
  std::string first_id;
  {
    running_journal r(settings(d));
    r.start();
    auto t = new_task();
    first_id = t.id;
    BOOST_TEST(r.store(t));
  }
  // The second schema's events table, as that version left it.
  execute(d.db(), R"sql(
CREATE TABLE events(seq INTEGER PRIMARY KEY, task_id TEXT NOT NULL, frame TEXT NOT NULL);
INSERT INTO events SELECT value, 'x', '{"task_id":"x","seq":' || value || '}'
  FROM json_each('[1,2,3]');
DROP TABLE event_batches;
ALTER TABLE tasks DROP COLUMN checkpoint;
ALTER TABLE tasks DROP COLUMN output;
ALTER TABLE tasks DROP COLUMN priority;
ALTER TABLE tasks DROP COLUMN max_attempts;
ALTER TABLE tasks DROP COLUMN timeout_seconds;
ALTER TABLE tasks DROP COLUMN run_ms;
ALTER TABLE tasks DROP COLUMN errors;
PRAGMA user_version = 2;
)sql");
  sqlite_journal j(settings(d));
  auto st = j.load();
  BOOST_TEST(st.last_seq == 3u);
  BOOST_REQUIRE(st.events.size() == 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    BOOST_TEST(st.events[i]->seq == i + 1);
    BOOST_TEST(st.events[i]->task_id == "x");
  }
  BOOST_TEST(st.tasks.size() == 1u);
  BOOST_TEST(st.tasks[0].id == first_id);
}

BOOST_AUTO_TEST_CASE(another_applications_database_is_refused) {
  data_dir d;
  execute(d.db(), "CREATE TABLE notes(x)");
  BOOST_TEST(refused_with(d, "not a quiesce database"));
}

BOOST_AUTO_TEST_CASE(a_schema_from_a_newer_version_is_refused) {
  data_dir d;
  { sqlite_journal j(settings(d)); }
  execute(d.db(), "PRAGMA user_version = 9");
  BOOST_TEST(refused_with(d, "newer"));
}
