#include "tasks/sqlite_journal.hpp"

#include "lifecycle/log.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <unordered_map>

namespace quiesce::tasks {
namespace {
using std::chrono::milliseconds;

struct sqlite_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string describe(sqlite3* db, int rc) {
  std::string m = sqlite3_errstr(rc);
  if (db && sqlite3_errcode(db) == rc) m = sqlite3_errmsg(db);
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
    m += " (another process holds this data directory)";
  return m;
}

void check(sqlite3* db, int rc) {
  if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
    throw sqlite_failure(describe(db, rc));
}

void exec(sqlite3* db, const char* sql) {
  check(db, sqlite3_exec(db, sql, nullptr, nullptr, nullptr));
}

// One prepared statement; binds by position, steps, finalises on destruction.
class statement {
 public:
  statement(sqlite3* db, const char* sql) : db_(db) {
    check(db, sqlite3_prepare_v2(db, sql, -1, &s_, nullptr));
  }
  ~statement() { sqlite3_finalize(s_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  void bind(int i, std::int64_t v) { check(db_, sqlite3_bind_int64(s_, i, v)); }
  void bind(int i, double v) { check(db_, sqlite3_bind_double(s_, i, v)); }
  void bind(int i, std::string_view v) {
    check(db_, sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void bind_null(int i) { check(db_, sqlite3_bind_null(s_, i)); }
  template <typename T>
  void bind(int i, const std::optional<T>& v) {
    if (v)
      bind(i, *v);
    else
      bind_null(i);
  }
  bool step() {  // true: a row
    int rc = sqlite3_step(s_);
    check(db_, rc);
    return rc == SQLITE_ROW;
  }
  // Steps once and resets, failed or not: a prepared statement is used again next commit.
  void run() {
    int rc = sqlite3_step(s_);
    sqlite3_reset(s_);
    check(db_, rc);
  }
  std::int64_t integer(int c) const { return sqlite3_column_int64(s_, c); }
  double real(int c) const { return sqlite3_column_double(s_, c); }
  bool null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string text(int c) const {
    const auto* p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<std::size_t>(sqlite3_column_bytes(s_, c)))
             : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

std::int64_t to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}
std::optional<std::int64_t> to_ms(const std::optional<std::chrono::system_clock::time_point>& t) {
  if (!t) return std::nullopt;
  return to_ms(*t);
}
std::chrono::system_clock::time_point from_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point(milliseconds(ms));
}
std::int64_t now_ms() { return to_ms(std::chrono::system_clock::now()); }

task_status status_from(std::string_view s) {
  for (std::size_t i = 0; i < status_count; ++i)
    if (to_string(static_cast<task_status>(i)) == s) return static_cast<task_status>(i);
  throw sqlite_failure("unknown task status '" + std::string(s) + "' in the database");
}

// Schema versions, in order; PRAGMA user_version says how many have been applied. A new version
// is a new entry, never an edit of an old one.
const char* const migrations[] = {
    R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE tasks(
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
  progress REAL NOT NULL, message TEXT NOT NULL, created_ms INTEGER NOT NULL,
  started_ms INTEGER, finished_ms INTEGER, result TEXT NOT NULL, error TEXT,
  idempotency_key TEXT, attempt INTEGER NOT NULL,
  finished_seq INTEGER,                    -- the seq of its final event: the order they ended
  lease_owner TEXT, lease_expires_ms INTEGER);
CREATE INDEX tasks_by_finish ON tasks(finished_seq) WHERE finished_seq IS NOT NULL;
-- The newest event is never pruned: its seq is where the next process numbers on from.
CREATE TABLE events(seq INTEGER PRIMARY KEY, task_id TEXT NOT NULL, frame TEXT NOT NULL);
)sql",
};
constexpr int schema_version = static_cast<int>(std::size(migrations));

int user_version(sqlite3* db) {
  statement s(db, "PRAGMA user_version");
  s.step();
  return static_cast<int>(s.integer(0));
}

std::optional<std::string> meta(sqlite3* db, const char* key) {
  statement s(db, "SELECT value FROM meta WHERE key = ?1");
  s.bind(1, std::string_view(key));
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

void set_meta(sqlite3* db, const char* key, std::string_view value) {
  statement s(db, "INSERT INTO meta VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2");
  s.bind(1, std::string_view(key));
  s.bind(2, value);
  s.run();
}

void rollback(sqlite3* db) {
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
}
}  // namespace

// The writer's statements, prepared once.
struct sqlite_journal::statements {
  explicit statements(sqlite3* db)
      : upsert(
            db,
            "INSERT INTO tasks(id, kind, params, status, progress, message, created_ms, started_ms,"
            " finished_ms, result, error, idempotency_key, attempt, finished_seq, lease_owner,"
            " lease_expires_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
            " ?15, ?16) ON CONFLICT(id) DO UPDATE SET status = ?4, progress = ?5, message = ?6,"
            " started_ms = ?8, finished_ms = ?9, result = ?10, error = ?11, attempt = ?13,"
            " finished_seq = ?14, lease_owner = ?15, lease_expires_ms = ?16"),
        event(db, "INSERT INTO events VALUES(?1, ?2, ?3)"),
        prune(db, "DELETE FROM events WHERE seq <= ?1"),
        forget(db,
               "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE finished_seq IS"
               " NOT NULL ORDER BY finished_seq LIMIT ?1)"),
        renew(db,
              "UPDATE tasks SET lease_expires_ms = ?1 WHERE status = 'running' AND"
              " lease_owner = ?2") {}
  statement upsert, event, prune, forget, renew;
};

sqlite_journal::sqlite_journal(journal_settings s)
    : settings_(std::move(s)), file_(settings_.data_dir / "quiesce.db") {
  std::error_code ec;
  if (!std::filesystem::is_directory(settings_.data_dir, ec))
    throw storage_error(settings_.data_dir.string(),
                        ec ? ec.message() : "the data directory does not exist");
  int rc =
      sqlite3_open_v2(file_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  try {
    if (rc != SQLITE_OK) throw sqlite_failure(describe(db_, rc));
    sqlite3_extended_result_codes(db_, 1);
    // One process per data directory: the lock is taken by the first write below and held
    // until exit, so a second quiesce on the same directory is refused instead of sharing it.
    exec(db_, "PRAGMA locking_mode = EXCLUSIVE");
    {
      statement wal(db_, "PRAGMA journal_mode = WAL");
      if (!wal.step() || wal.text(0) != "wal") throw sqlite_failure("cannot enter WAL mode");
    }
    if (sqlite3_db_readonly(db_, "main") == 1) throw sqlite_failure("the file is read-only");
    // FULL, not WAL's usual NORMAL: NORMAL survives a crash of the process but may lose the last
    // commits on power loss or a kernel panic; FULL fsyncs the WAL at every commit, so a 2xx
    // (sent only after its commit) means the task is on the disk. Group commit pays for it.
    exec(db_, "PRAGMA synchronous = FULL");
    exec(db_, "PRAGMA cache_size = -16384");  // 16 MiB: the indexes' pages stay in memory
    {
      statement qc(db_, "PRAGMA quick_check");
      if (qc.step() && qc.text(0) != "ok") throw sqlite_failure("corrupt: " + qc.text(0));
    }
    int version = user_version(db_);
    if (version > schema_version)
      throw sqlite_failure("schema version " + std::to_string(version) +
                           " is newer than this quiesce understands (" +
                           std::to_string(schema_version) + ")");
    exec(db_, "BEGIN IMMEDIATE");
    if (version == 0) {
      statement tables(db_, "SELECT count(*) FROM sqlite_schema");
      tables.step();
      if (tables.integer(0) != 0)
        throw sqlite_failure("not a quiesce database (it has tables but no schema version)");
    }
    for (int v = version; v < schema_version; ++v) exec(db_, migrations[v]);
    exec(db_, ("PRAGMA user_version = " + std::to_string(schema_version)).c_str());
    if (!meta(db_, "epoch")) set_meta(db_, "epoch", new_task_id());
    // Which process holds the directory (for whoever reads the file after a crash); on an
    // existing database it is also the write that takes the lock.
    set_meta(db_, "opened_by", settings_.owner);
    exec(db_, "COMMIT");
  } catch (const sqlite_failure& e) {
    if (db_) rollback(db_);
    sqlite3_close(db_);
    db_ = nullptr;
    throw storage_error(file_.string(), e.what());
  }
}

sqlite_journal::~sqlite_journal() {
  stop();
  statements_.reset();  // finalised before the connection closes
  sqlite3_close(db_);
}

stored_state sqlite_journal::load() {
  stored_state st;
  try {
    st.epoch = *meta(db_, "epoch");
    {
      statement last(db_, "SELECT coalesce(max(seq), 0) FROM events");
      last.step();
      st.last_seq = static_cast<std::uint64_t>(last.integer(0));
    }
    statement tasks(db_,
                    "SELECT id, kind, params, status, progress, message, created_ms, started_ms,"
                    " finished_ms, result, error, idempotency_key, attempt FROM tasks"
                    " ORDER BY finished_seq IS NULL, finished_seq, rowid");
    while (tasks.step()) {
      task_record t;
      t.id = tasks.text(0);
      t.kind = tasks.text(1);
      t.params = boost::json::parse(tasks.text(2)).as_object();
      t.status = status_from(tasks.text(3));
      t.progress = tasks.real(4);
      t.message = tasks.text(5);
      t.created_at = from_ms(tasks.integer(6));
      if (!tasks.null(7)) t.started_at = from_ms(tasks.integer(7));
      if (!tasks.null(8)) t.finished_at = from_ms(tasks.integer(8));
      t.result = boost::json::parse(tasks.text(9));
      if (!tasks.null(10)) t.error = tasks.text(10);
      if (!tasks.null(11)) t.idempotency_key = tasks.text(11);
      t.attempt = static_cast<int>(tasks.integer(12));
      if (is_final(t.status)) ++finished_rows_;
      st.tasks.push_back(std::move(t));
    }
    statement events(db_,
                     "SELECT seq, task_id, frame FROM"
                     " (SELECT * FROM events ORDER BY seq DESC LIMIT ?1) ORDER BY seq");
    events.bind(1, static_cast<std::int64_t>(settings_.event_retention));
    while (events.step())
      st.events.push_back(std::make_shared<const stream_event>(stream_event{
          static_cast<std::uint64_t>(events.integer(0)), events.text(1), events.text(2)}));
  } catch (const std::exception& e) {
    // A row this version cannot read is a corrupt database: refuse, rewrite nothing.
    throw storage_error(file_.string(), std::string("cannot read the stored tasks: ") + e.what());
  }
  return st;
}

void sqlite_journal::start(deliver_fn deliver) {
  deliver_ = std::move(deliver);
  try {
    statements_ = std::make_unique<statements>(db_);
  } catch (const sqlite_failure& e) {
    throw storage_error(file_.string(), e.what());
  }
  writer_ = std::thread([this] { run(); });
}

void sqlite_journal::append(journal_entry e) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(e));
  }
  wake_.notify_one();
}

void sqlite_journal::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (writer_.joinable()) writer_.join();
}

bool sqlite_journal::healthy() const {
  std::lock_guard lock(mutex_);
  return healthy_;
}

void sqlite_journal::run() {
  using clock = std::chrono::steady_clock;
  std::vector<journal_entry> batch;  // entries that failed stay here, in order, for the retry
  auto renew_at = clock::now() + settings_.lease / 3;
  milliseconds backoff{0};
  for (;;) {
    bool stopping = false;
    {
      std::unique_lock lock(mutex_);
      auto until = backoff.count() ? clock::now() + backoff : renew_at;
      wake_.wait_until(lock, std::min(until, renew_at),
                       [&] { return stopping_ || (!queue_.empty() && backoff.count() == 0); });
      stopping = stopping_;
      // Everything appended while the last commit ran goes into this one: group commit.
      for (auto& e : queue_) batch.push_back(std::move(e));
      queue_.clear();
    }
    if (clock::now() >= renew_at) {
      renew_leases();
      renew_at = clock::now() + settings_.lease / 3;
    }
    if (batch.empty()) {
      if (!stopping) continue;
      // The group commit's record, for the operator and the bench.
      log::info("task store closed",
                {{"file", file_.string()}, {"commits", commits_}, {"changes", changes_}});
      return;
    }
    std::size_t size = batch.size();
    bool stored = write(batch);
    if (stored) {
      ++commits_;
      changes_ += size;
    }
    {
      std::lock_guard lock(mutex_);
      healthy_ = stored;
    }
    settle(batch, stored);
    backoff =
        stored ? milliseconds(0) : std::clamp(backoff * 2, milliseconds(100), milliseconds(1000));
    if (stopping && !stored) {
      log::error("task changes not stored at exit",
                 {{"file", file_.string()}, {"count", batch.size()}});
      // Nothing more will be tried, and the drain must finish: the changes are settled but not
      // delivered (no client sees what was not stored); their tasks run again next start.
      if (!batch.empty()) deliver_({}, batch.back().event->seq);
      return;
    }
  }
}

// After a write: a stored batch is delivered; a failed one refuses its admissions (their
// clients get a 503) and keeps everything else for the retry, in order.
void sqlite_journal::settle(std::vector<journal_entry>& batch, bool stored) {
  std::vector<event_ptr> events;
  std::uint64_t last = batch.back().event->seq;
  std::vector<std::function<void(bool)>> answers;
  if (stored) {
    for (auto& e : batch) {
      events.push_back(e.event);
      if (e.on_stored) answers.push_back(std::move(e.on_stored));
    }
    batch.clear();
  } else {
    std::vector<journal_entry> kept;
    for (auto& e : batch)
      if (e.on_stored)
        answers.push_back(std::move(e.on_stored));
      else
        kept.push_back(std::move(e));
    batch = std::move(kept);
    if (!batch.empty()) last = batch.front().event->seq - 1;
  }
  deliver_(events, last);
  for (auto& a : answers) a(stored);
}

bool sqlite_journal::write(const std::vector<journal_entry>& batch) {
  try {
    exec(db_, "BEGIN IMMEDIATE");
    auto& upsert = statements_->upsert;
    auto& event = statements_->event;
    // A task that changed several times in one batch (queued, running, succeeded) is written
    // once, in its last state; every event is written.
    std::unordered_map<std::string_view, std::size_t> last_change;
    for (std::size_t i = 0; i < batch.size(); ++i) last_change[batch[i].task.id] = i;
    std::size_t finishing = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& e = batch[i];
      const auto& t = e.task;
      auto seq = static_cast<std::int64_t>(e.event->seq);
      event.bind(1, seq);
      event.bind(2, std::string_view(e.event->task_id));
      event.bind(3, std::string_view(e.event->text));
      event.run();
      if (is_final(t.status)) ++finishing;
      if (last_change[t.id] != i) continue;
      bool running = t.status == task_status::running;
      upsert.bind(1, std::string_view(t.id));
      upsert.bind(2, std::string_view(t.kind));
      upsert.bind(3, std::string_view(boost::json::serialize(t.params)));
      upsert.bind(4, to_string(t.status));
      upsert.bind(5, t.progress);
      upsert.bind(6, std::string_view(t.message));
      upsert.bind(7, to_ms(t.created_at));
      upsert.bind(8, to_ms(t.started_at));
      upsert.bind(9, to_ms(t.finished_at));
      upsert.bind(10, std::string_view(boost::json::serialize(t.result)));
      upsert.bind(11, t.error);
      upsert.bind(12, t.idempotency_key);
      upsert.bind(13, static_cast<std::int64_t>(t.attempt));
      if (is_final(t.status)) {
        upsert.bind(14, seq);
      } else {
        upsert.bind_null(14);
      }
      if (running) {
        upsert.bind(15, std::string_view(settings_.owner));
        upsert.bind(16, now_ms() + settings_.lease.count());
      } else {
        upsert.bind_null(15);
        upsert.bind_null(16);
      }
      upsert.run();
    }
    // Pruning touches old pages, so it waits until an eighth of the retention is due at once
    // (the load reads only the newest `retention`): most commits write only new pages.
    auto last = batch.back().event->seq;
    if (last > pruned_through_ + settings_.event_retention + settings_.event_retention / 8) {
      auto& prune = statements_->prune;
      prune.bind(1, static_cast<std::int64_t>(last - settings_.event_retention));
      prune.run();
      pruned_through_ = last - settings_.event_retention;
    }
    // Finished tasks (and their idempotency keys) beyond the retention, oldest first: the
    // same ones the memory cache forgets.
    std::size_t excess = 0;
    if (finished_rows_ + finishing > settings_.task_retention + settings_.task_retention / 8) {
      excess = finished_rows_ + finishing - settings_.task_retention;
      auto& forget = statements_->forget;
      forget.bind(1, static_cast<std::int64_t>(excess));
      forget.run();
    }
    exec(db_, "COMMIT");
    finished_rows_ = finished_rows_ + finishing - excess;
    return true;
  } catch (const sqlite_failure& e) {
    rollback(db_);
    log::error("cannot store task changes",
               {{"file", file_.string()}, {"error", e.what()}, {"changes", batch.size()}});
    return false;
  }
}

void sqlite_journal::renew_leases() {
  try {
    auto& renew = statements_->renew;
    renew.bind(1, now_ms() + settings_.lease.count());
    renew.bind(2, std::string_view(settings_.owner));
    renew.run();
  } catch (const sqlite_failure& e) {
    log::error("cannot renew task leases", {{"file", file_.string()}, {"error", e.what()}});
  }
}

}  // namespace quiesce::tasks
