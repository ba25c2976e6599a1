// The sqlite journal on real files: schema creation and migration, what survives a reopen,
// leases, retention, and the files it must refuse.
#define BOOST_TEST_MODULE store
#include "tasks/sqlite_journal.hpp"
#include "tasks/task_json.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <sqlite3.h>

#include <condition_variable>
#include <fstream>
#include <mutex>

using namespace quiesce::tasks;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct data_dir {
  fs::path path = fs::temp_directory_path() / ("quiesce-store-test-" + new_task_id());
  data_dir() { fs::create_directory(path); }
  ~data_dir() { fs::remove_all(path); }
  fs::path db() const { return path / "quiesce.db"; }
};

journal_settings settings(const data_dir& d, std::size_t task_retention = 100,
                          std::chrono::milliseconds lease = 30s) {
  return {d.path, task_retention, 100, lease, "owner-" + new_task_id()};
}

// Starts a journal and waits for what it delivers.
struct running_journal {
  sqlite_journal journal;
  std::mutex m;
  std::condition_variable cv;
  std::vector<event_ptr> delivered;
  std::uint64_t settled = 0;

  std::uint64_t next_seq = 0;

  explicit running_journal(journal_settings s) : journal(std::move(s)) {}
  stored_state start() {
    auto st = journal.load();
    next_seq = st.last_seq;
    journal.start([this](const std::vector<event_ptr>& events, std::uint64_t upto) {
      std::lock_guard lock(m);
      delivered.insert(delivered.end(), events.begin(), events.end());
      settled = upto;
      cv.notify_all();
    });
    return st;
  }
  // Appends `t`'s current state with an event, as the bus does, and waits until it is stored.
  bool store(const task_record& t) {
    bool ok = false, done = false;
    auto seq = ++next_seq;
    boost::json::object body = to_json(t);
    body["seq"] = seq;
    journal.append({t,
                    std::make_shared<const stream_event>(
                        stream_event{seq, t.id, boost::json::serialize(body)}),
                    [&](bool stored) {
                      std::lock_guard lock(m);
                      ok = stored;
                      done = true;
                      cv.notify_all();
                    }});
    std::unique_lock lock(m);
    BOOST_REQUIRE(cv.wait_for(lock, 10s, [&] { return done && settled >= seq; }));
    return ok;
  }
  // Appends without waiting, so that the writer stores several changes in one commit.
  void append(const task_record& t) {
    auto seq = ++next_seq;
    boost::json::object body = to_json(t);
    body["seq"] = seq;
    journal.append({t,
                    std::make_shared<const stream_event>(
                        stream_event{seq, t.id, boost::json::serialize(body)}),
                    {}});
  }
  void wait_stored() {
    std::unique_lock lock(m);
    BOOST_REQUIRE(cv.wait_for(lock, 10s, [&] { return settled >= next_seq; }));
  }
};

task_record new_task(std::optional<std::string> key = std::nullopt) {
  task_record t;
  t.id = new_task_id();
  t.kind = "sleep";
  t.params = boost::json::object{{"seconds", 1.5}};
  t.created_at = std::chrono::system_clock::now();
  t.message = status_message(t.id, task_status::queued);
  t.idempotency_key = std::move(key);
  return t;
}

// Reads one value from the database after the journal has closed it.
std::string query(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  BOOST_REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  BOOST_REQUIRE(sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
  std::string out;
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
    out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  sqlite3_close(h);
  return out;
}

// Runs `sql` on the database with a connection of its own (the journal closed).
void execute(const fs::path& db, const char* sql) {
  sqlite3* h = nullptr;
  BOOST_REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  BOOST_REQUIRE(sqlite3_exec(h, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(h);
}

bool refused_with(const data_dir& d, const std::string& cause) {
  try {
    sqlite_journal j(settings(d));
  } catch (const storage_error& e) {
    BOOST_TEST_MESSAGE(e.file << ": " << e.what());
    BOOST_TEST(e.file == d.db().string());
    return std::string(e.what()).find(cause) != std::string::npos;
  }
  return false;
}

}  // namespace

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
  BOOST_TEST(query(d.db(), "PRAGMA user_version") == "3");
  BOOST_TEST(query(d.db(), "PRAGMA journal_mode") == "wal");
  sqlite_journal again(settings(d));
  BOOST_TEST(again.load().epoch == epoch);
}

BOOST_AUTO_TEST_CASE(an_empty_file_is_migrated) {
  data_dir d;
  std::ofstream(d.db()).close();  // zero bytes: what `touch` or a failed first start leaves
  sqlite_journal j(settings(d));
  BOOST_TEST(j.load().epoch.size() == 36u);
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
  BOOST_TEST(query(d.db(), "PRAGMA user_version") == "3");
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
