#include "tasks/pg/schema.hpp"

#include "support/log.hpp"
#include "tasks/pg/connection.hpp"

#include <stdexcept>

namespace quiesce::tasks::pg {
namespace asio = boost::asio;

namespace {

// Any constant works; it names the schema's lock among the database's advisory locks.
constexpr const char* lock_key = "7172657363650001";  // "quiesce" + 1

// Version 1. Times are microseconds since the epoch as the process saw them (what clients are
// shown); leases and heartbeats use the database's clock only, so replicas' clocks need not agree.
// params and result are text: stored as the client sent them, never queried into.
constexpr const char* version_1 = R"sql(
BEGIN;
CREATE TABLE quiesce_schema (version integer NOT NULL);
CREATE TABLE quiesce_tasks (
  id text PRIMARY KEY,
  queue_order bigint GENERATED ALWAYS AS IDENTITY,
  kind text NOT NULL,
  params text NOT NULL,
  status text NOT NULL,
  progress double precision NOT NULL DEFAULT 0,
  message text NOT NULL,
  created_us bigint NOT NULL,
  started_us bigint,
  finished_us bigint,
  result text,
  error text,
  idempotency_key text UNIQUE,
  attempt integer NOT NULL DEFAULT 0,
  owner text,
  lease_until timestamptz,
  cancel_requested boolean NOT NULL DEFAULT false
);
CREATE INDEX quiesce_tasks_queued ON quiesce_tasks (queue_order) WHERE status = 'queued';
CREATE INDEX quiesce_tasks_leases ON quiesce_tasks (lease_until) WHERE status = 'running';
CREATE INDEX quiesce_tasks_owned ON quiesce_tasks (owner) WHERE owner IS NOT NULL;
CREATE INDEX quiesce_tasks_finished ON quiesce_tasks (finished_us) WHERE finished_us IS NOT NULL;
CREATE TABLE quiesce_replicas (
  id text PRIMARY KEY,
  pod text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL,
  draining boolean NOT NULL DEFAULT false
);
INSERT INTO quiesce_schema VALUES (1);
COMMIT;
)sql";

// Version 2: one event stream for the service. Every change of a task's status, progress or
// attempt is recorded by a trigger, in the statement (so the transaction) that made it, so no
// writer can forget it. Its seq comes from one counter row: the UPDATE of that row holds its lock
// until commit, so a second writer gets its numbers only after the first committed (or rolled
// back, which takes its numbers back). Seq order is therefore commit order and what any snapshot
// sees is 1..N without a hole: a reader asking for `seq > last` cannot skip an event that commits
// later, as it could with a sequence (bigserial numbers become visible out of commit order).
// Writers without an event (lease renewals, cancel flags, pruning) never take the counter's lock.
constexpr const char* version_2 = R"sql(
BEGIN;
CREATE TABLE quiesce_event_counter (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  epoch text NOT NULL,
  last_seq bigint NOT NULL
);
INSERT INTO quiesce_event_counter (epoch, last_seq) VALUES (gen_random_uuid()::text, 0);
CREATE TABLE quiesce_events (
  seq bigint PRIMARY KEY,
  requeued boolean NOT NULL,
  id text NOT NULL,
  kind text NOT NULL,
  params text NOT NULL,
  status text NOT NULL,
  progress double precision NOT NULL,
  message text NOT NULL,
  created_us bigint NOT NULL,
  started_us bigint,
  finished_us bigint,
  result text,
  error text,
  idempotency_key text,
  attempt integer NOT NULL
);
CREATE FUNCTION quiesce_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k bigint; top bigint;
BEGIN
  SELECT count(*) INTO k FROM new_rows;
  IF k = 0 THEN RETURN NULL; END IF;
  UPDATE quiesce_event_counter SET last_seq = last_seq + k RETURNING last_seq INTO top;
  INSERT INTO quiesce_events
  SELECT top - k + row_number() OVER (ORDER BY n.queue_order), false, n.id, n.kind, n.params,
         n.status, n.progress, n.message, n.created_us, n.started_us, n.finished_us, n.result,
         n.error, n.idempotency_key, n.attempt
  FROM new_rows n;
  PERFORM pg_notify('quiesce_events', top::text);
  RETURN NULL;
END $$;
CREATE FUNCTION quiesce_events_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k bigint; top bigint;
BEGIN
  SELECT count(*) INTO k FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE (n.status, n.progress, n.attempt) IS DISTINCT FROM (o.status, o.progress, o.attempt);
  IF k = 0 THEN RETURN NULL; END IF;
  UPDATE quiesce_event_counter SET last_seq = last_seq + k RETURNING last_seq INTO top;
  INSERT INTO quiesce_events
  SELECT top - k + row_number() OVER (ORDER BY n.queue_order),
         o.status = 'running' AND n.status = 'queued', n.id, n.kind, n.params, n.status,
         n.progress, n.message, n.created_us, n.started_us, n.finished_us, n.result, n.error,
         n.idempotency_key, n.attempt
  FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE (n.status, n.progress, n.attempt) IS DISTINCT FROM (o.status, o.progress, o.attempt);
  PERFORM pg_notify('quiesce_events', top::text);
  RETURN NULL;
END $$;
CREATE TRIGGER quiesce_events_inserted AFTER INSERT ON quiesce_tasks
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION quiesce_events_inserted();
CREATE TRIGGER quiesce_events_updated AFTER UPDATE ON quiesce_tasks
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION quiesce_events_updated();
INSERT INTO quiesce_schema VALUES (2);
COMMIT;
)sql";

// Version 3: real work. A task's last checkpoint (handed to its next attempt), the tail of its
// output and its job options (priority, attempts allowed, timeout, when a scheduled task becomes
// runnable, the errors of its failed attempts), in the task and in each event, as clients read
// the record. Runnable tasks are claimed by priority, then arrival; scheduled ones found by time.
constexpr const char* version_3 = R"sql(
BEGIN;
ALTER TABLE quiesce_tasks ADD COLUMN checkpoint text, ADD COLUMN output text,
  ADD COLUMN priority smallint NOT NULL DEFAULT 5, ADD COLUMN max_attempts integer NOT NULL DEFAULT 1,
  ADD COLUMN timeout_seconds double precision, ADD COLUMN run_at_us bigint,
  ADD COLUMN errors text NOT NULL DEFAULT '[]';
ALTER TABLE quiesce_events ADD COLUMN checkpoint text, ADD COLUMN output text,
  ADD COLUMN priority smallint NOT NULL DEFAULT 5, ADD COLUMN max_attempts integer NOT NULL DEFAULT 1,
  ADD COLUMN timeout_seconds double precision, ADD COLUMN run_at_us bigint,
  ADD COLUMN errors text NOT NULL DEFAULT '[]';
DROP INDEX quiesce_tasks_queued;
CREATE INDEX quiesce_tasks_runnable ON quiesce_tasks (priority, queue_order) WHERE status = 'queued';
CREATE INDEX quiesce_tasks_scheduled ON quiesce_tasks (run_at_us) WHERE status = 'scheduled';
CREATE OR REPLACE FUNCTION quiesce_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k bigint; top bigint;
BEGIN
  SELECT count(*) INTO k FROM new_rows;
  IF k = 0 THEN RETURN NULL; END IF;
  UPDATE quiesce_event_counter SET last_seq = last_seq + k RETURNING last_seq INTO top;
  INSERT INTO quiesce_events
  SELECT top - k + row_number() OVER (ORDER BY n.queue_order), false, n.id, n.kind, n.params,
         n.status, n.progress, n.message, n.created_us, n.started_us, n.finished_us, n.result,
         n.error, n.idempotency_key, n.attempt, n.checkpoint, n.output, n.priority,
         n.max_attempts, n.timeout_seconds, n.run_at_us, n.errors
  FROM new_rows n;
  PERFORM pg_notify('quiesce_events', top::text);
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION quiesce_events_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE k bigint; top bigint;
BEGIN
  SELECT count(*) INTO k FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE (n.status, n.progress, n.attempt) IS DISTINCT FROM (o.status, o.progress, o.attempt);
  IF k = 0 THEN RETURN NULL; END IF;
  UPDATE quiesce_event_counter SET last_seq = last_seq + k RETURNING last_seq INTO top;
  INSERT INTO quiesce_events
  SELECT top - k + row_number() OVER (ORDER BY n.queue_order),
         o.status = 'running' AND n.status = 'queued', n.id, n.kind, n.params, n.status,
         n.progress, n.message, n.created_us, n.started_us, n.finished_us, n.result, n.error,
         n.idempotency_key, n.attempt, n.checkpoint, n.output, n.priority, n.max_attempts,
         n.timeout_seconds, n.run_at_us, n.errors
  FROM new_rows n JOIN old_rows o ON o.id = n.id
  WHERE (n.status, n.progress, n.attempt) IS DISTINCT FROM (o.status, o.progress, o.attempt);
  PERFORM pg_notify('quiesce_events', top::text);
  RETURN NULL;
END $$;
INSERT INTO quiesce_schema VALUES (3);
COMMIT;
)sql";

}  // namespace

asio::awaitable<void> migrate(connection& c, std::chrono::milliseconds timeout) {
  // Session-level: released below, or when the connection closes if a step fails. The caller
  // goes on using the connection, and other replicas' start-ups wait on this lock.
  std::vector<param> key;
  key.emplace_back(lock_key);
  co_await c.exec("SELECT pg_advisory_lock($1::bigint)", key, timeout);
  std::vector<param> none;
  auto found = co_await c.exec("SELECT to_regclass('quiesce_schema') IS NOT NULL", none, timeout);
  int version = 0;
  if (found.get(0, 0) == "t") {
    auto v = co_await c.exec("SELECT max(version) FROM quiesce_schema", none, timeout);
    version = v.null(0, 0) ? 0 : static_cast<int>(v.integer(0, 0));
  }
  if (version > schema_version)
    throw std::runtime_error("the database has schema version " + std::to_string(version) +
                             ", newer than this quiesce knows (" + std::to_string(schema_version) +
                             "): run a newer quiesce");
  if (version == 0) co_await c.script(version_1, timeout);
  if (version < 2) co_await c.script(version_2, timeout);
  if (version < 3) co_await c.script(version_3, timeout);
  if (version < schema_version)
    log::always(version == 0 ? "database schema created" : "database schema migrated",
                {{"from", version}, {"version", schema_version}});
  co_await c.exec("SELECT pg_advisory_unlock($1::bigint)", key, timeout);
}

}  // namespace quiesce::tasks::pg
