// Admission (group commit), reads and cancellation of the shared store.
#include "tasks/pg/shared_service.hpp"

#include "support/log.hpp"
#include "tasks/pg/rows.hpp"
#include "tasks/task_json.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include <unordered_set>

namespace quiesce::tasks::pg {
namespace asio = boost::asio;
namespace json = boost::json;
using namespace asio::experimental::awaitable_operators;

namespace {
// Admissions stored in one statement at most: a burst is a few statements, not one huge one.
constexpr std::size_t batch_limit = 512;

std::string now_us() { return micros(std::chrono::system_clock::now()); }
}  // namespace

shared_service::shared_service(shared_settings s, kind_registry kinds, event_bus& bus,
                               asio::thread_pool& cpu)
    : settings_(std::move(s)),
      kinds_(std::move(kinds)),
      replica_(new_task_id()),
      bus_(bus),
      cpu_(cpu),
      pool_(settings_.conninfo, settings_.pool_size, settings_.timeout) {
  pool_.on_health = [this](bool ok, pool::clock::time_point began, const std::string& why) {
    health(ok, began, why);
  };
}

shared_service::~shared_service() {
  work_.reset();
  db_.stop();
  if (thread_.joinable()) thread_.join();
}

void shared_service::open() {
  work_.emplace(db_.get_executor());
  thread_ = std::thread([this] { db_.run(); });
}

// Statements overlap: one sent as the server went down may succeed after others failed, one sent
// during an outage may time out after others succeeded. Only an outcome of an attempt that began
// after the last change can change the state again, so each outage is logged once.
void shared_service::health(bool ok, pool::clock::time_point began, const std::string& why) {
  if (ok == healthy_ || began < health_changed_) return;
  healthy_ = ok;
  healthy_seen_ = ok;
  health_changed_ = pool::clock::now();
  if (ok)
    log::always("database reachable again", {});
  else
    log::error("database unreachable", {{"error", why}});
}

// Metrics count what this replica changed; the streams get every replica's events from the
// database (shared_runner.cpp: follow_events).
void shared_service::observed(const task_record& t) {
  if (observer_) observer_->status_changed(t);
}

asio::awaitable<admission> shared_service::admit(std::string kind, json::object params,
                                                 std::optional<std::string> idempotency_key,
                                                 job_options options) {
  auto p = std::make_shared<pending_admission>();
  p->task = admitted_task(kinds_, kind, params, std::move(idempotency_key), options);
  auto a = co_await on_db(admit_here(std::move(p)));
  // Back on the caller's thread: the one database strand serves every admission.
  if (a.task) a.text = task_text(*a.task);
  co_return a;
}

asio::awaitable<admission> shared_service::admit_here(std::shared_ptr<pending_admission> p) {
  if (!accepting_) co_return admission{admit_outcome::closed, std::nullopt};
  ++admitting_;
  struct answered {  // also when the caller is cancelled while it waits: the drain counts it
    shared_service& s;
    ~answered() {
      --s.admitting_;
      s.changed_.notify_all();
    }
  } guard{*this};
  admissions_.push_back(p);
  if (!std::exchange(writing_admissions_, true))
    asio::co_spawn(db_, write_admissions(), lifecycle::log_escaped{"admission writer"});
  // The writer may have run inline and settled it already (a statement can complete without
  // suspending when the answer is on the socket at once).
  co_await admissions_settled_.wait_until([&] { return p->settled; });
  if (!p->answer) throw store_unavailable(p->failure);
  co_return std::move(*p->answer);
}

// Group commit: whatever was admitted while the last statement ran goes in the next one.
asio::awaitable<void> shared_service::write_admissions() {
  while (!admissions_.empty()) {
    admission_batch batch;
    while (!admissions_.empty() && batch.size() < batch_limit) {
      batch.push_back(std::move(admissions_.front()));
      admissions_.pop_front();
    }
    try {
      auto room = co_await insert_admissions(batch);
      answer_the_rest(batch, co_await read_replays(batch), room);
    } catch (const db_error& e) {
      log::warn("admissions not stored", {{"count", batch.size()}, {"error", e.what()}});
      for (auto& p : batch) p->failure = e.what();
    } catch (const std::exception& e) {
      log::error("admissions not stored", {{"count", batch.size()}, {"error", e.what()}});
      for (auto& p : batch) p->failure = e.what();
    }
    for (auto& p : batch) {
      if (p->answer && p->answer->outcome == admit_outcome::created) observed(p->task);
      p->settled = true;
    }
    admissions_settled_.notify_all();
    // Our own workers need not wait for the notification to come back.
    wake_claimer();
  }
  writing_admissions_ = false;
}

// One statement: inserts what fits in the queue, skips keys already taken (the unique constraint
// decides, not a lookup), notifies the replicas once if it inserted, and answers each inserted
// admission `created`. Returns the queue's room before the batch.
asio::awaitable<std::int64_t> shared_service::insert_admissions(const admission_batch& batch) {
  static const std::string insert = R"sql(
WITH room AS (SELECT $2::bigint - count(*) AS n FROM quiesce_tasks
              WHERE status IN ('queued', 'scheduled')),
ins AS (
  INSERT INTO quiesce_tasks (id, kind, params, status, message, created_us, idempotency_key,
                             priority, max_attempts, timeout_seconds, run_at_us)
  SELECT x.id, x.kind, x.params, x.status, x.message, x.created_us, x.idempotency_key,
         x.priority, x.max_attempts, x.timeout_seconds, x.run_at_us
  FROM jsonb_to_recordset($1::jsonb) AS x(ord bigint, id text, kind text, params text,
                                          status text, message text, created_us bigint,
                                          idempotency_key text, priority smallint,
                                          max_attempts integer, timeout_seconds double precision,
                                          run_at_us bigint),
       room
  WHERE x.ord < room.n ORDER BY x.ord
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING id, status, run_at_us),
-- The payload: the earliest time a scheduled task among them becomes runnable (shared_schedule.cpp).
woke AS (SELECT pg_notify('quiesce_work', coalesce((SELECT min(run_at_us)::text FROM ins
                                                     WHERE status = 'scheduled'), ''))
         FROM (SELECT 1 FROM ins LIMIT 1) AS one)
SELECT (SELECT n FROM room), (SELECT count(*) FROM woke), id FROM ins)sql";
  auto capacity = std::to_string(settings_.queue_capacity);
  auto r = co_await pool_.exec(insert, admission_rows(batch), capacity);
  std::unordered_set<std::string_view> inserted;
  for (int i = 0; i < r.rows(); ++i) inserted.insert(r.get(i, 2));
  for (auto& p : batch)
    if (inserted.contains(p->task.id)) p->answer = admission{admit_outcome::created, p->task};
  // `room` is in every row; with none inserted, ask again (rare: all full or all replays).
  if (r.rows()) co_return r.integer(0, 0);
  auto q = co_await pool_.exec(
      "SELECT $1::bigint - count(*) FROM quiesce_tasks WHERE status IN ('queued', 'scheduled')",
      capacity);
  co_return q.integer(0, 0);
}

// The stored tasks of the keys that the batch's admissions not inserted named, by key.
asio::awaitable<std::unordered_map<std::string, task_record>> shared_service::read_replays(
    const admission_batch& batch) {
  static const std::string replayed =
      "SELECT " + task_columns() +
      " FROM quiesce_tasks WHERE idempotency_key IN (SELECT jsonb_array_elements_text($1::jsonb))";
  json::array keys;
  for (auto& p : batch)
    if (!p->answer && p->task.idempotency_key)
      keys.push_back(json::value(*p->task.idempotency_key));
  std::unordered_map<std::string, task_record> by_key;
  if (keys.empty()) co_return by_key;
  auto q = co_await pool_.exec(replayed, json::serialize(keys));
  for (int i = 0; i < q.rows(); ++i) {
    auto t = read_task(q, i);
    by_key.emplace(*t.idempotency_key, std::move(t));
  }
  co_return by_key;
}

// Every admission the insert did not answer: a replay of its key's task, or refused for room.
void shared_service::answer_the_rest(const admission_batch& batch,
                                     const std::unordered_map<std::string, task_record>& by_key,
                                     std::int64_t room) {
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto& p = *batch[i];
    if (p.answer) continue;
    if (p.task.idempotency_key)
      if (auto it = by_key.find(*p.task.idempotency_key); it != by_key.end()) {
        p.answer = admission{admit_outcome::replayed, it->second};
        continue;
      }
    if (static_cast<std::int64_t>(i) >= room)
      p.answer = admission{admit_outcome::queue_full, std::nullopt};
    else  // its key's task was pruned between the two statements: the client may retry
      p.failure = "the task with this key was just forgotten; retry";
  }
}

// The batch as the insert reads it: one JSON record per admission, `ord` its place in the batch.
std::string shared_service::admission_rows(const admission_batch& batch) {
  json::array rows;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto& t = batch[i]->task;
    rows.push_back(json::object{
        {"ord", i},
        {"id", t.id},
        {"kind", t.kind},
        {"params", json::serialize(t.params.get())},
        {"status", to_string(t.status)},
        {"message", t.message},
        {"created_us", micros(t.created_at)},
        {"priority", t.priority},
        {"max_attempts", t.max_attempts},
        {"timeout_seconds",
         t.timeout_seconds ? json::value(*t.timeout_seconds) : json::value(nullptr)},
        {"run_at_us", t.run_at ? json::value(micros(*t.run_at)) : json::value(nullptr)},
        {"idempotency_key",
         t.idempotency_key ? json::value(*t.idempotency_key) : json::value(nullptr)}});
  }
  return json::serialize(rows);
}

asio::awaitable<std::optional<task_record>> shared_service::find(std::string id) {
  co_return co_await on_db(read_now(std::move(id)));
}

asio::awaitable<std::pair<cancel_outcome, std::optional<task_record>>> shared_service::cancel(
    std::string id) {
  co_return co_await on_db(cancel_here(std::move(id)));
}

// A queued task is cancelled by one statement. A running one is flagged and its owner told
// through a notification (or its next heartbeat); the answer waits for the task's end to come
// back through the event stream (follow_events), bounded for an owner that died.
asio::awaitable<std::pair<cancel_outcome, std::optional<task_record>>> shared_service::cancel_here(
    std::string id) {
  static const std::string cancel_queued =
      "UPDATE quiesce_tasks SET status = 'cancelled', finished_us = $2, "
      "message = 'Task ' || id || ' cancelled' WHERE id = $1 AND status IN ('queued', 'scheduled') "
      "RETURNING " +
      task_columns();
  static const std::string flag_running =
      "UPDATE quiesce_tasks SET cancel_requested = true WHERE id = $1 AND status = 'running' "
      "RETURNING pg_notify('quiesce_cancel', id)";
  auto q = co_await pool_.exec(cancel_queued, id, now_us());
  if (q.rows() == 1) {
    auto t = read_task(q, 0);
    observed(t);
    co_return std::pair{cancel_outcome::cancelled, std::optional(std::move(t))};
  }
  // Awaited before the flag: an end read from the stream after it is seen.
  ++awaited_ends_[id].waiting;
  struct forget {
    std::unordered_map<std::string, awaited_end>& ends;
    const std::string& id;
    ~forget() {
      if (auto it = ends.find(id); --it->second.waiting == 0) ends.erase(it);
    }
  } guard{awaited_ends_, id};
  auto f = co_await pool_.exec(flag_running, id);
  auto t = co_await read_now(id);
  if (t && !is_final(t->status)) {
    // Its owner died and the lease is being waited out: answer with what is known then.
    asio::steady_timer bound(db_, std::chrono::seconds(10) + settings_.lease);
    boost::system::error_code ec;
    co_await (ends_seen_.wait_until([&] { return awaited_ends_.at(id).seen; }) ||
              bound.async_wait(asio::redirect_error(asio::use_awaitable, ec)));
    t = co_await read_now(id);
  }
  if (!t) co_return std::pair{cancel_outcome::not_found, std::nullopt};
  if (!is_final(t->status)) co_return std::pair{cancel_outcome::cancelled, std::move(t)};
  co_return std::pair{f.rows() == 1 && t->status == task_status::cancelled
                          ? cancel_outcome::cancelled
                          : cancel_outcome::already_finished,
                      std::move(t)};
}

// On db_: the task as stored now.
asio::awaitable<std::optional<task_record>> shared_service::read_now(std::string id) {
  static const std::string read = "SELECT " + task_columns() + " FROM quiesce_tasks WHERE id = $1";
  auto r = co_await pool_.exec(read, id);
  if (r.rows() == 0) co_return std::nullopt;
  co_return read_task(r, 0);
}

// On db_, from the follower: a task reached a final status; a DELETE may be waiting for it.
void shared_service::ended(const std::string& id) {
  auto it = awaited_ends_.find(id);
  if (it == awaited_ends_.end()) return;
  it->second.seen = true;
  ends_seen_.notify_all();
}

asio::awaitable<task_counts> shared_service::read_counts() {
  auto read = [this]() -> asio::awaitable<task_counts> {
    auto r = co_await pool_.exec(
        "SELECT count(*) FILTER (WHERE status = 'queued'), "
        "count(*) FILTER (WHERE status = 'running') FROM quiesce_tasks "
        "WHERE status IN ('queued', 'running')");
    auto c = known_counts();
    c.queued = static_cast<std::size_t>(r.integer(0, 0));
    c.running = static_cast<std::size_t>(r.integer(0, 1));
    co_return c;
  };
  co_return co_await on_db(read());
}

task_counts shared_service::known_counts() const {
  std::lock_guard lock(counts_mutex_);
  auto c = counts_;
  c.capacity = settings_.queue_capacity;
  return c;
}

}  // namespace quiesce::tasks::pg
