#include "tasks/pg/schema.hpp"

#include "lifecycle/log.hpp"
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

}  // namespace

asio::awaitable<void> migrate(std::string conninfo, std::chrono::milliseconds timeout) {
  auto c = co_await connection::open(conninfo, timeout);
  // Session-level: released when this connection closes, whatever happens below.
  std::vector<param> key;
  key.emplace_back(lock_key);
  co_await c->exec("SELECT pg_advisory_lock($1::bigint)", key, timeout);
  std::vector<param> none;
  auto found = co_await c->exec("SELECT to_regclass('quiesce_schema') IS NOT NULL", none, timeout);
  int version = 0;
  if (found.get(0, 0) == "t") {
    auto v = co_await c->exec("SELECT max(version) FROM quiesce_schema", none, timeout);
    version = v.null(0, 0) ? 0 : static_cast<int>(v.integer(0, 0));
  }
  if (version > schema_version)
    throw std::runtime_error("the database has schema version " + std::to_string(version) +
                             ", newer than this quiesce knows (" + std::to_string(schema_version) +
                             "): run a newer quiesce");
  if (version == 0) {
    co_await c->script(version_1, timeout);
    log::always("database schema created", {{"version", schema_version}});
  }
}

}  // namespace quiesce::tasks::pg
