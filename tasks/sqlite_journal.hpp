// The durable store: <data-dir>/quiesce.db, SQLite in WAL mode, written by one thread that
// commits whatever was appended while it was busy as one transaction (group commit). Events
// are handed back for delivery only once committed; see task_journal.hpp.
#pragma once

#include "tasks/task_journal.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

struct sqlite3;

namespace quiesce::tasks {

// A data directory or database that cannot be used: `file` names it, what() the cause.
struct storage_error : std::runtime_error {
  storage_error(std::string f, const std::string& cause)
      : std::runtime_error(cause), file(std::move(f)) {}
  std::string file;
};

// Filled from the configuration (app/settings.cpp; every default is in app/config.hpp).
struct journal_settings {
  std::filesystem::path data_dir;
  std::size_t task_retention{};   // finished tasks kept, as the memory cache keeps them
  std::size_t event_retention{};  // events kept for ?since= replay
  std::chrono::milliseconds lease{};
  std::string owner;  // this process, written on the tasks it runs
};

// What earlier processes left in the data directory.
struct stored_state {
  std::string epoch;
  std::uint64_t last_seq = 0;
  std::vector<task_record> tasks;  // finished ones in the order they finished, then the rest
  std::vector<event_ptr> events;   // the newest `event_retention`, oldest first
};

class sqlite_journal final : public task_journal {
 public:
  using deliver_fn = std::function<void(const std::vector<event_ptr>& stored, std::uint64_t)>;

  // Opens <data_dir>/quiesce.db, creating or migrating its schema, and locks it for this
  // process. Throws storage_error; never rewrites a file it cannot read.
  explicit sqlite_journal(journal_settings s);
  ~sqlite_journal() override;
  sqlite_journal(const sqlite_journal&) = delete;
  sqlite_journal& operator=(const sqlite_journal&) = delete;

  const std::filesystem::path& file() const { return file_; }
  stored_state load();
  // Starts the writer thread; `deliver` is called from it after each commit.
  void start(deliver_fn deliver);
  void append(journal_entry e) override;
  // Stores what was appended (one last attempt if storage is failing) and ends the writer.
  void stop();
  bool healthy() const;  // the last write succeeded

 private:
  std::vector<event_ptr> load_events();
  void run();
  bool write(const std::vector<journal_entry>& batch);
  void write_task(const task_record& t, std::int64_t seq, std::optional<std::int64_t> row);
  void renew_leases();
  void settle(std::vector<journal_entry>& batch, bool stored);

  struct statements;

  const journal_settings settings_;
  const std::filesystem::path file_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<statements> statements_;   // writer thread only, once started
  std::size_t finished_rows_ = 0;            // writer thread only
  std::uint64_t pruned_through_ = 0;         // writer thread only
  std::uint64_t commits_ = 0, changes_ = 0;  // writer thread only
  // The row of every unfinished task (load() fills it, then the writer thread alone): ids are
  // random and have no index (see the schema), and a finished task is never written again.
  std::unordered_map<std::string, std::int64_t> rows_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<journal_entry> queue_;
  bool stopping_ = false;
  bool healthy_ = true;
  deliver_fn deliver_;
  std::thread writer_;
};

// The journal's writer for as long as this lives: started when it is made, stopped (what was
// appended stored) when it goes. Declared after what `deliver` uses, it stops before that goes.
class journal_writer {
 public:
  // No journal (the memory store): nothing to run.
  journal_writer(sqlite_journal* journal, sqlite_journal::deliver_fn deliver) : journal_(journal) {
    if (journal_) journal_->start(std::move(deliver));
  }
  ~journal_writer() {
    if (journal_) journal_->stop();
  }
  journal_writer(const journal_writer&) = delete;
  journal_writer& operator=(const journal_writer&) = delete;

 private:
  sqlite_journal* journal_;
};

}  // namespace quiesce::tasks
