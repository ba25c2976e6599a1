// The admin routes: probes, status and metrics. They answer through the whole drain.
#include "app/app_state.hpp"

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

// The service's counts, asked afresh; while a shared store is unreachable, as last seen.
asio::awaitable<response> status_body(app_state& s) {
  std::optional<tasks::task_counts> fresh;
  try {
    fresh = co_await s.tasks.read_counts();
  } catch (const tasks::store_unavailable&) {
  }
  auto c = fresh ? *fresh : s.tasks.known_counts();
  auto deadline = s.phase.until_deadline();
  co_return json_response(
      status::ok, {{"phase", lifecycle::to_string(s.phase.current())},
                   {"accepting", s.tasks.accepting()},
                   {"queued", c.queued},
                   {"running", c.running},
                   {"queue_capacity", c.capacity},
                   {"websockets", s.streams.open()},
                   {"connections", s.connections.open()},
                   {"connections_refused", s.connections.refused()},
                   {"deadline_in_ms",
                    deadline ? boost::json::value(ms(deadline)) : boost::json::value(nullptr)},
                   {"epoch", s.bus.epoch()},
                   {"last_seq", s.bus.last_seq()},
                   {"store", s.cfg.store},
                   {"store_healthy", s.tasks.store_healthy()}});
}

response metrics_text(app_state& s) {
  response res{status::ok, 11};
  res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.body() = s.metrics.scrape(s);
  return res;
}

// `route` is set to the path of the route that answered, for the metrics.
asio::awaitable<response> answer(app_state& s, request& req, std::string_view& route) {
  auto target = req.target();
  auto path = target.substr(0, target.find('?'));
  for (std::string_view known : {"/healthz", "/readyz", "/v1/status", "/metrics"})
    if (path == known) route = known;
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    auto res = net::error_response(status::method_not_allowed, "method_not_allowed",
                                   "admin routes answer GET");
    res.set(http::field::allow, "GET");
    co_return res;
  }
  // Liveness: answering at all proves the event loop runs; it never fails for a drain.
  // The probes' constant answers are written as text: no object built and serialised per probe.
  if (path == "/healthz") co_return net::json_text_response(status::ok, R"({"status":"ok"})");
  if (path == "/readyz") {
    if (s.phase.draining())
      co_return json_response(
          status::service_unavailable,
          {{"status", "draining"}, {"phase", lifecycle::to_string(s.phase.current())}});
    if (!s.phase.ready())
      co_return json_response(
          status::service_unavailable,
          {{"status", "not_serving"}, {"detail", "the public listener failed"}});
    co_return net::json_text_response(status::ok, R"({"status":"ready"})");
  }
  if (path == "/v1/status") co_return co_await status_body(s);
  if (path == "/metrics") co_return metrics_text(s);
  co_return net::error_response(status::not_found, "not_found", "no such route");
}

// Every answer is counted and timed by route, as on the public port.
asio::awaitable<response> measured(app_state& s, request& req) {
  auto start = std::chrono::steady_clock::now();
  std::string_view route = "other";
  auto res = co_await answer(s, req, route);
  s.metrics.http_answered(route, res.result_int(), std::chrono::steady_clock::now() - start);
  co_return res;
}

}  // namespace

net::http_routes admin_routes(app_state& s) {
  return {[&s](request& req) { return measured(s, req); }, {}};  // no streams here
}

}  // namespace quiesce::app
