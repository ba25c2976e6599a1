#include "app/settings.hpp"

#include <cstdlib>

namespace quiesce::app {

namespace {

constexpr const char* outside_kubernetes = "Not running inside Kubernetes";

// Read at start-up, before any thread exists (nothing here calls setenv).
std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  return v && *v ? v : fallback;
}

}  // namespace

std::string pod_name(const char* fallback) { return env_or("KUBE_POD_NAME", fallback); }

lifecycle::drain_settings drain_settings_of(const config& c) {
  return {ms_from_seconds(c.drain_delay), ms_from_seconds(c.close_spread),
          ms_from_seconds(c.close_timeout), ms_from_seconds(c.shutdown_timeout)};
}

net::http_limits http_limits_of(const config& c) {
  return {c.header_limit, c.body_limit, ms_from_seconds(c.idle_timeout),
          ms_from_seconds(c.header_timeout)};
}

stream::stream_settings stream_settings_of(const config& c) {
  return {c.ws_send_queue,
          c.ws_send_queue_bytes,
          c.ws_message_limit,
          c.ws_send_buffer,
          ms_from_seconds(c.ws_ping_interval),
          ms_from_seconds(c.close_timeout),
          std::chrono::microseconds(c.ws_batch_us),
          pod_name(outside_kubernetes),
          env_or("KUBE_POD_NAMESPACE", outside_kubernetes)};
}

tasks::kind_settings kind_settings_of(const config& c) {
  return {c.task_seconds, c.max_task_seconds};
}

command::output_limits output_limits_of(const config& c) {
  return {c.command_tail_bytes, c.command_log_bytes, c.command_line_bytes,
          ms_from_seconds(c.command_linger)};
}

std::vector<command::kind_spec> command_kinds_of(const config& c) {
  if (c.kinds.empty()) return {};
  return command::read_kinds_file(c.kinds);
}

tasks::kind_registry kinds_of(const config& c, const std::vector<command::kind_spec>& commands) {
  auto kinds = tasks::builtin_kinds(kind_settings_of(c));
  tasks::add_command_kinds(kinds, commands, output_limits_of(c));
  return kinds;
}

tasks::service_settings service_settings_of(const config& c) {
  // A durable store keeps what the deadline stopped for the next process.
  return {c.workers, c.queue_capacity, c.store == "sqlite"};
}

tasks::journal_settings journal_settings_of(const config& c, std::string owner) {
  return {c.data_dir, c.task_retention, c.event_retention, ms_from_seconds(c.lease_seconds),
          std::move(owner)};
}

tasks::store_settings store_settings_of(const config& c) {
  tasks::store_settings s;
  s.kind = c.store == "postgres" ? tasks::store_kind::postgres
           : c.store == "memory" ? tasks::store_kind::memory
                                 : tasks::store_kind::sqlite;
  s.local = service_settings_of(c);
  s.journal = journal_settings_of(c, tasks::new_task_id());
  s.shared = shared_settings_of(c);
  s.task_retention = c.task_retention;
  s.event_retention = c.event_retention;
  return s;
}

tasks::pg::shared_settings shared_settings_of(const config& c) {
  return {c.database_url,
          c.database_pool,
          ms_from_seconds(c.database_timeout),
          c.workers,
          c.queue_capacity,
          c.task_retention,
          c.event_retention,
          ms_from_seconds(c.lease_seconds),
          pod_name("local")};
}

}  // namespace quiesce::app
