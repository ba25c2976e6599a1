#include "tasks/sqlite_journal.hpp"
#include "tasks/task_json.hpp"

#include "support/log.hpp"
#include "tasks/sqlite_schema.hpp"
#include "tasks/sqlite_statement.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <unordered_map>

namespace quiesce::tasks {
namespace {
using std::chrono::milliseconds;

using sqlite::statement;
using sqlite_failure = sqlite::failure;

std::int64_t epoch_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}
std::optional<std::int64_t> epoch_ms(
    const std::optional<std::chrono::system_clock::time_point>& t) {
  if (!t) return std::nullopt;
  return epoch_ms(*t);
}
std::int64_t now_ms() { return epoch_ms(std::chrono::system_clock::now()); }

}  // namespace

// The writer's statements, prepared once.
struct sqlite_journal::statements {
  explicit statements(sqlite3* db)
      : begin(db, "BEGIN IMMEDIATE"),  // parsed once, not per commit
        commit(db, "COMMIT"),
        insert(db,
               "INSERT INTO tasks(id, kind, params, status, progress, message, created_ms,"
               " started_ms, finished_ms, result, error, idempotency_key, attempt, finished_seq,"
               " lease_owner, lease_expires_ms, checkpoint, output, priority, max_attempts,"
               " timeout_seconds, run_ms, errors) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
               " ?11, ?12, ?13, ?14, ?15, ?16, ?18, ?19, ?20, ?21, ?22, ?23, ?24)"),
        // Only what a task's later changes can touch: its id, kind, params, creation and
        // idempotency key are written once.
        update(db,
               "UPDATE tasks SET status = ?4, progress = ?5, message = ?6, started_ms = ?8,"
               " finished_ms = ?9, result = ?10, error = ?11, attempt = ?13, finished_seq = ?14,"
               " lease_owner = ?15, lease_expires_ms = ?16, checkpoint = ?18, output = ?19,"
               " max_attempts = ?21, run_ms = ?23, errors = ?24 WHERE row_key = ?17"),
        events(db, "INSERT INTO event_batches VALUES(?1, ?2)"),
        // Whole rows only: a row that holds some retained events stays, and load() skips the rest.
        prune(db, "DELETE FROM event_batches WHERE last_seq <= ?1"),
        forget(db,
               "DELETE FROM tasks WHERE row_key IN (SELECT row_key FROM tasks WHERE finished_seq"
               " IS NOT NULL ORDER BY finished_seq LIMIT ?1)"),
        renew(db,
              "UPDATE tasks SET lease_expires_ms = ?1 WHERE status = 'running' AND"
              " lease_owner = ?2") {}
  statement begin, commit, insert, update, events, prune, forget, renew;
};

sqlite_journal::sqlite_journal(journal_settings s)
    : settings_(std::move(s)), file_(settings_.data_dir / "quiesce.db") {
  std::error_code ec;
  if (!std::filesystem::is_directory(settings_.data_dir, ec))
    throw storage_error(settings_.data_dir.string(),
                        ec ? ec.message() : "the data directory does not exist");
  try {
    db_ = sqlite::open_journal(file_, settings_.owner);
  } catch (const sqlite_failure& e) {
    throw storage_error(file_.string(), e.what());
  }
}

sqlite_journal::~sqlite_journal() {
  stop();
  statements_.reset();  // finalised before the connection closes
  sqlite3_close(db_);
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

// The task's row in its state after change `seq`: a new row when `row` is empty, else an
// update of the columns that change (the insert's parameter numbers, so one binding serves both).
void sqlite_journal::write_task(const task_record& t, std::int64_t seq,
                                std::optional<std::int64_t> row) {
  auto& s = row ? statements_->update : statements_->insert;
  // Bound without a copy: alive until the statement has run.
  std::string params;
  if (!row) {
    params = boost::json::serialize(t.params.get());
    s.bind(1, std::string_view(t.id));
    s.bind(2, std::string_view(t.kind));
    s.bind(3, std::string_view(params));
    s.bind(7, epoch_ms(t.created_at));
    s.bind(12, t.idempotency_key);
  } else {
    s.bind(17, *row);
  }
  const std::string result = boost::json::serialize(t.result);
  s.bind(4, to_string(t.status));
  s.bind(5, t.progress);
  s.bind(6, std::string_view(t.message));
  s.bind(8, epoch_ms(t.started_at));
  s.bind(9, epoch_ms(t.finished_at));
  s.bind(10, std::string_view(result));
  s.bind(11, t.error);
  s.bind(13, static_cast<std::int64_t>(t.attempt));
  std::optional<std::string> checkpoint;
  if (!t.checkpoint.is_null()) checkpoint = boost::json::serialize(t.checkpoint);
  s.bind(18, checkpoint);
  s.bind(19, t.output);
  s.bind(20, static_cast<std::int64_t>(t.priority));
  s.bind(21, static_cast<std::int64_t>(t.max_attempts));
  s.bind(22, t.timeout_seconds);
  s.bind(23, epoch_ms(t.run_at));
  const std::string errors =
      t.errors.empty() ? "[]" : boost::json::serialize(errors_json(t.errors));
  s.bind(24, std::string_view(errors));
  if (is_final(t.status)) {
    s.bind(14, seq);
  } else {
    s.bind_null(14);
  }
  if (t.status == task_status::running) {
    s.bind(15, std::string_view(settings_.owner));
    s.bind(16, now_ms() + settings_.lease.count());
  } else {
    s.bind_null(15);
    s.bind_null(16);
  }
  s.run();
}

bool sqlite_journal::write(const std::vector<journal_entry>& batch) {
  try {
    statements_->begin.run();
    // One row for the batch's events (schema 3 in sqlite_schema.cpp).
    std::string frames;
    std::size_t bytes = 0;
    for (const auto& e : batch) bytes += e.event->text.size() + 1;
    frames.reserve(bytes);
    // A task that changed several times in one batch (queued, running, succeeded) is written
    // once, in its last state; every event is written.
    std::unordered_map<std::string_view, std::size_t> last_change;
    for (std::size_t i = 0; i < batch.size(); ++i) last_change[batch[i].task.id] = i;
    std::size_t finishing = 0;
    // rows_ changes only once the commit has: a failed batch is written again, rows and all.
    std::vector<std::pair<const std::string*, std::int64_t>> new_rows;
    std::vector<const std::string*> ended;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& e = batch[i];
      const auto& t = e.task;
      auto seq = static_cast<std::int64_t>(e.event->seq);
      if (!frames.empty()) frames += '\n';
      frames += e.event->text;
      if (is_final(t.status)) ++finishing;
      if (last_change[t.id] != i) continue;
      auto row = rows_.find(t.id);
      write_task(t, seq, row == rows_.end() ? std::nullopt : std::optional(row->second));
      if (is_final(t.status)) {
        if (row != rows_.end()) ended.push_back(&t.id);
      } else if (row == rows_.end()) {
        new_rows.emplace_back(&t.id, sqlite3_last_insert_rowid(db_));
      }
    }
    auto last = batch.back().event->seq;
    auto& events = statements_->events;
    events.bind(1, static_cast<std::int64_t>(last));
    events.bind(2, std::string_view(frames));
    events.run();
    // Pruning touches old pages, so it waits until an eighth of the retention is due at once
    // (the load reads only the newest `retention`): most commits write only new pages.
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
    statements_->commit.run();
    finished_rows_ = finished_rows_ + finishing - excess;
    for (auto& [id, row] : new_rows) rows_.emplace(*id, row);
    for (const auto* id : ended) rows_.erase(*id);
    return true;
  } catch (const sqlite_failure& e) {
    sqlite::rollback(db_);
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
