// What the sqlite journal's unit tests share: a data directory of their own, a journal started
// with its deliveries recorded, tasks, and direct reads and writes of the database file.
#pragma once

#include "tasks/event_bus.hpp"
#include "tasks/sqlite_journal.hpp"
#include "tasks/task_json.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <sqlite3.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

namespace store_test {
using namespace quiesce::tasks;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct data_dir {
  fs::path path = fs::temp_directory_path() / ("quiesce-store-test-" + new_task_id());
  data_dir() { fs::create_directory(path); }
  ~data_dir() { fs::remove_all(path); }
  fs::path db() const { return path / "quiesce.db"; }
};

inline journal_settings settings(const data_dir& d, std::size_t task_retention = 100,
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
    append(t, [&](bool stored) {
      std::lock_guard lock(m);
      ok = stored;
      done = true;
      cv.notify_all();
    });
    std::unique_lock lock(m);
    BOOST_REQUIRE(cv.wait_for(lock, 10s, [&, seq = next_seq] { return done && settled >= seq; }));
    return ok;
  }
  // Appends without waiting, so that the writer stores several changes in one commit. The
  // event's text is the bus's own (open_event_text, then its seq).
  void append(const task_record& t, std::function<void(bool)> on_stored = {}) {
    auto text = open_event_text(t);
    close_with_seq(text, ++next_seq);
    journal.append(
        {t, std::make_shared<const stream_event>(stream_event{next_seq, t.id, std::move(text)}),
         std::move(on_stored)});
  }
  void wait_stored() {
    std::unique_lock lock(m);
    BOOST_REQUIRE(cv.wait_for(lock, 10s, [&] { return settled >= next_seq; }));
  }
};

inline task_record new_task(std::optional<std::string> key = std::nullopt) {
  return queued_task("sleep", boost::json::object{{"seconds", 1.5}}, std::move(key));
}

// Reads one value from the database after the journal has closed it.
inline std::string query(const fs::path& db, const std::string& sql) {
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
inline void execute(const fs::path& db, const char* sql) {
  sqlite3* h = nullptr;
  BOOST_REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  BOOST_REQUIRE(sqlite3_exec(h, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(h);
}

inline bool refused_with(const data_dir& d, const std::string& cause) {
  try {
    sqlite_journal j(settings(d));
  } catch (const storage_error& e) {
    BOOST_TEST_MESSAGE(e.file << ": " << e.what());
    BOOST_TEST(e.file == d.db().string());
    return std::string(e.what()).find(cause) != std::string::npos;
  }
  return false;
}

}  // namespace store_test
