// The admin routes: probes, status and metrics. They answer through the whole drain.
#include "app/app_state.hpp"

#include <sstream>

namespace quiesce::app {
namespace asio = boost::asio;
namespace http = net::http;
using http::status;
using net::json_response;
using net::request;
using net::response;

namespace {

std::int64_t ms(std::optional<std::chrono::steady_clock::duration> d) {
  return d ? std::chrono::duration_cast<std::chrono::milliseconds>(*d).count() : -1;
}

response status_body(app_state& s) {
  auto c = s.tasks.counts();
  auto deadline = s.phase.until_deadline();
  return json_response(status::ok, {{"phase", lifecycle::to_string(s.phase.current())},
                                    {"accepting", s.tasks.accepting()},
                                    {"queued", c.queued},
                                    {"running", c.running},
                                    {"queue_capacity", c.capacity},
                                    {"websockets", s.streams.open()},
                                    {"connections", s.connections.open()},
                                    {"connections_refused", s.connections.refused()},
                                    {"deadline_in_ms", deadline ? boost::json::value(ms(deadline))
                                                                : boost::json::value(nullptr)},
                                    {"epoch", s.bus.epoch()},
                                    {"last_seq", s.bus.last_seq()},
                                    {"store", s.journal ? "sqlite" : "memory"},
                                    {"store_healthy", !s.journal || s.journal->healthy()}});
}

// Prometheus text format 0.0.4.
response metrics(app_state& s) {
  auto c = s.tasks.counts();
  std::ostringstream m;
  auto family = [&m](const char* name, const char* type, const char* help) {
    m << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  };
  family("quiesce_tasks", "gauge", "Tasks known to this process, by status.");
  for (std::size_t i = 0; i < tasks::status_count; ++i)
    m << "quiesce_tasks{status=\"" << tasks::to_string(static_cast<tasks::task_status>(i)) << "\"} "
      << c.by_status[i] << '\n';
  family("quiesce_queue_depth", "gauge", "Tasks waiting for a worker.");
  m << "quiesce_queue_depth " << c.queued << '\n';
  family("quiesce_queue_capacity", "gauge", "Tasks the queue holds before answering 429.");
  m << "quiesce_queue_capacity " << c.capacity << '\n';
  family("quiesce_tasks_running", "gauge", "Tasks being run by a worker.");
  m << "quiesce_tasks_running " << c.running << '\n';
  family("quiesce_websockets_open", "gauge", "Open WebSocket event streams.");
  m << "quiesce_websockets_open " << s.streams.open() << '\n';
  family("quiesce_connections_open", "gauge", "Open connections on the public port.");
  m << "quiesce_connections_open " << s.connections.open() << '\n';
  family("quiesce_connections_refused_total", "counter",
         "Connections reset at accept because --max-connections were open.");
  m << "quiesce_connections_refused_total " << s.connections.refused() << '\n';
  family("quiesce_events_published_total", "counter", "Task events published.");
  m << "quiesce_events_published_total " << s.bus.published() << '\n';
  family("quiesce_websockets_dropped_slow_total", "counter",
         "Streams closed 1013 for not keeping up.");
  m << "quiesce_websockets_dropped_slow_total " << s.streams.dropped_slow() << '\n';
  family("quiesce_store_healthy", "gauge",
         "1 if the last write to the task store succeeded (always 1 with --store memory).");
  m << "quiesce_store_healthy " << (!s.journal || s.journal->healthy() ? 1 : 0) << '\n';
  family("quiesce_drain_phase", "gauge", "1 for the phase the process is in.");
  for (auto p : {lifecycle::phase::running, lifecycle::phase::draining, lifecycle::phase::closing,
                 lifecycle::phase::terminating, lifecycle::phase::stopped})
    m << "quiesce_drain_phase{phase=\"" << lifecycle::to_string(p) << "\"} "
      << (s.phase.current() == p ? 1 : 0) << '\n';
  family("quiesce_drain_seconds_left", "gauge",
         "Seconds before the shutdown deadline (-1: no drain).");
  auto left = s.phase.until_deadline();
  m << "quiesce_drain_seconds_left " << (left ? static_cast<double>(ms(left)) / 1000.0 : -1.0)
    << '\n';
  response res{status::ok, 11};
  res.set(http::field::content_type, "text/plain; version=0.0.4");
  res.body() = m.str();
  return res;
}

asio::awaitable<response> answer(app_state& s, request& req) {
  auto target = req.target();
  auto path = target.substr(0, target.find('?'));
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    auto res = net::error_response(status::method_not_allowed, "method_not_allowed",
                                   "admin routes answer GET");
    res.set(http::field::allow, "GET");
    co_return res;
  }
  // Liveness: answering at all proves the event loop runs; it never fails for a drain.
  if (path == "/healthz") co_return json_response(status::ok, {{"status", "ok"}});
  if (path == "/readyz") {
    if (s.phase.draining())
      co_return json_response(
          status::service_unavailable,
          {{"status", "draining"}, {"phase", lifecycle::to_string(s.phase.current())}});
    co_return json_response(status::ok, {{"status", "ready"}});
  }
  if (path == "/v1/status") co_return status_body(s);
  if (path == "/metrics") co_return metrics(s);
  co_return net::error_response(status::not_found, "not_found", "no such route");
}

}  // namespace

net::http_routes admin_routes(app_state& s) {
  return {[&s](request& req) { return answer(s, req); },
          [](const request&) -> std::variant<response, net::stream_request> {
            return net::error_response(status::not_found, "not_found",
                                       "no streams on the admin port");
          }};
}

}  // namespace quiesce::app
