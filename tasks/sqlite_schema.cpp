#include "tasks/sqlite_schema.hpp"

#include "tasks/sqlite_statement.hpp"
#include "tasks/task.hpp"

namespace quiesce::tasks::sqlite {
namespace {

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
    // Rows keyed by the order they were written, and no index on the random ids: an index on
    // them put every commit's inserts (and retention's deletes) on random pages, rewritten whole
    // into the WAL. The journal finds an unfinished task's row in memory (sqlite_journal.hpp).
    R"sql(
CREATE TABLE tasks_v2(
  row_key INTEGER PRIMARY KEY,
  id TEXT NOT NULL, kind TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
  progress REAL NOT NULL, message TEXT NOT NULL, created_ms INTEGER NOT NULL,
  started_ms INTEGER, finished_ms INTEGER, result TEXT NOT NULL, error TEXT,
  idempotency_key TEXT, attempt INTEGER NOT NULL,
  finished_seq INTEGER,
  lease_owner TEXT, lease_expires_ms INTEGER);
INSERT INTO tasks_v2(id, kind, params, status, progress, message, created_ms, started_ms,
  finished_ms, result, error, idempotency_key, attempt, finished_seq, lease_owner,
  lease_expires_ms)
  SELECT id, kind, params, status, progress, message, created_ms, started_ms, finished_ms,
    result, error, idempotency_key, attempt, finished_seq, lease_owner, lease_expires_ms
  FROM tasks ORDER BY rowid;
DROP TABLE tasks;
ALTER TABLE tasks_v2 RENAME TO tasks;
CREATE INDEX tasks_by_finish ON tasks(finished_seq) WHERE finished_seq IS NOT NULL;
)sql",
    // Events one row per commit, not per event: its frames, oldest first, one per line (a frame
    // is JSON text, which has no raw newline). A row per event was a third of a commit's
    // instructions and half its bytes, inserted and later pruned one by one
    // (bench/journal.cpp). An old event becomes a row of its own.
    R"sql(
CREATE TABLE event_batches(last_seq INTEGER PRIMARY KEY, frames TEXT NOT NULL);
INSERT INTO event_batches SELECT seq, frame FROM events ORDER BY seq;
DROP TABLE events;
)sql",
    // Real work: a task's last checkpoint (JSON text, handed to its next attempt), the tail of
    // its output, and its job options (run_ms: when a scheduled task becomes runnable; errors:
    // its failed attempts, JSON).
    R"sql(
ALTER TABLE tasks ADD COLUMN checkpoint TEXT;
ALTER TABLE tasks ADD COLUMN output TEXT;
ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 5;
ALTER TABLE tasks ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN timeout_seconds REAL;
ALTER TABLE tasks ADD COLUMN run_ms INTEGER;
ALTER TABLE tasks ADD COLUMN errors TEXT NOT NULL DEFAULT '[]';
)sql",
};
constexpr int schema_version = static_cast<int>(std::size(migrations));

int user_version(sqlite3* db) {
  statement s(db, "PRAGMA user_version");
  s.step();
  return static_cast<int>(s.integer(0));
}

}  // namespace

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

sqlite3* open_journal(const std::filesystem::path& file, std::string_view owner) {
  sqlite3* db = nullptr;
  // NOMUTEX: the connection is used by one thread at a time (the loading thread, then the writer
  // alone), so SQLite's own lock around every call (4% of the writer's instructions) guards
  // nothing.
  int rc = sqlite3_open_v2(
      file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  try {
    if (rc != SQLITE_OK) throw failure(describe(db, rc));
    sqlite3_extended_result_codes(db, 1);
    // One process per data directory: the lock is taken by the first write below and held
    // until exit, so a second quiesce on the same directory is refused instead of sharing it.
    exec(db, "PRAGMA locking_mode = EXCLUSIVE");
    {
      statement wal(db, "PRAGMA journal_mode = WAL");
      if (!wal.step() || wal.text(0) != "wal") throw failure("cannot enter WAL mode");
    }
    if (sqlite3_db_readonly(db, "main") == 1) throw failure("the file is read-only");
    // FULL, not WAL's usual NORMAL: NORMAL survives a crash of the process but may lose the last
    // commits on power loss or a kernel panic; FULL fsyncs the WAL at every commit, so a 2xx
    // (sent only after its commit) means the task is on the disk. Group commit pays for it.
    exec(db, "PRAGMA synchronous = FULL");
    // Debian builds SQLite with secure_delete on: every freed page (pruned events, forgotten
    // tasks) is zeroed and written to the WAL once more. FAST still overwrites deleted rows
    // where that costs no extra page: 20% fewer bytes written per task (bench/journal.cpp).
    exec(db, "PRAGMA secure_delete = FAST");
    exec(db, "PRAGMA cache_size = -16384");  // 16 MiB: the pages commits touch stay in memory
    // A checkpoint copies the latest version of every page the WAL holds into the database;
    // most commits rewrite the same last pages, so a longer WAL (32 MiB, not 4) copies each of
    // them once for eight times as many commits: 14% fewer bytes written per task.
    exec(db, "PRAGMA wal_autocheckpoint = 8000");
    {
      statement qc(db, "PRAGMA quick_check");
      if (qc.step() && qc.text(0) != "ok") throw failure("corrupt: " + qc.text(0));
    }
    int version = user_version(db);
    if (version > schema_version)
      throw failure("schema version " + std::to_string(version) +
                    " is newer than this quiesce understands (" + std::to_string(schema_version) +
                    ")");
    exec(db, "BEGIN IMMEDIATE");
    if (version == 0) {
      statement tables(db, "SELECT count(*) FROM sqlite_schema");
      tables.step();
      if (tables.integer(0) != 0)
        throw failure("not a quiesce database (it has tables but no schema version)");
    }
    for (int v = version; v < schema_version; ++v) exec(db, migrations[v]);
    exec(db, ("PRAGMA user_version = " + std::to_string(schema_version)).c_str());
    if (!meta(db, "epoch")) set_meta(db, "epoch", new_task_id());
    // Which process holds the directory (for whoever reads the file after a crash); on an
    // existing database it is also the write that takes the lock.
    set_meta(db, "opened_by", owner);
    exec(db, "COMMIT");
  } catch (const failure&) {
    if (db) rollback(db);
    sqlite3_close(db);
    throw;
  }
  return db;
}

}  // namespace quiesce::tasks::sqlite
