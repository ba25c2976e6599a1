// The public routes: the original's five (same paths, codes and keys) and the native task API.
#include "app/app_state.hpp"
#include "app/assets.hpp"
#include "app/task_request.hpp"
#include "stream/websocket_session.hpp"

#include "tasks/task_json.hpp"
#include "tasks/task_kind.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>

#include <charconv>
#include <variant>

namespace quiesce::app {
namespace asio = boost::asio;
namespace json = boost::json;
using net::error_response;
namespace http = net::http;
using namespace asio::experimental::awaitable_operators;
using http::status;
using net::json_response;
using net::request;
using net::response;

namespace {

constexpr const char* shutdown_text = "Service Under Graceful Shutdown";

// 503 for new work while draining: the client should retry elsewhere.
response draining_response(json::object body) {
  auto res = json_response(status::service_unavailable, body);
  res.set(http::field::retry_after, "5");
  res.keep_alive(false);
  return res;
}

response not_found() { return error_response(status::not_found, "not_found", "no such route"); }

response method_not_allowed(std::string_view allow) {
  auto res = error_response(status::method_not_allowed, "method_not_allowed",
                            "this route answers " + std::string(allow));
  res.set(http::field::allow, allow);
  return res;
}

response task_not_found() {
  return json_response(status::not_found,
                       {{"error", "task_not_found"}, {"detail", "Task not found"}});
}

response store_unavailable_response() {
  auto res = error_response(status::service_unavailable, "store_unavailable",
                            "the task store cannot be reached; retry later");
  res.set(http::field::retry_after, "1");
  return res;
}

// The answer when a task was not admitted: 503 while draining, 429 when the queue is full, 503
// when the journal could not store it (admit() answers only once it knows). A shared store that
// cannot be reached throws tasks::store_unavailable instead: see measured().
std::optional<response> refusal(const tasks::admission& a) {
  switch (a.outcome) {
    case tasks::admit_outcome::closed:
      return draining_response({{"error", "draining"}, {"detail", shutdown_text}});
    case tasks::admit_outcome::queue_full: {
      auto res = error_response(status::too_many_requests, "queue_full",
                                "the task queue is full (--queue-capacity); retry later");
      res.set(http::field::retry_after, "1");
      return res;
    }
    case tasks::admit_outcome::unavailable: {
      auto res =
          error_response(status::service_unavailable, "store_unavailable",
                         "the task could not be stored, so it was not accepted; retry later");
      res.set(http::field::retry_after, "1");
      return res;
    }
    default:
      return std::nullopt;
  }
}

response asset(std::string_view type, std::string_view text) {
  response res{status::ok, 11};
  res.set(http::field::content_type, type);
  res.set(http::field::cache_control, "no-cache");  // the next version of the server may differ
  res.body() = text;
  return res;
}

// The page's only scripts and styles are its own; it talks to this server only.
response docs_page() {
  auto res = asset("text/html; charset=utf-8", assets::docs_html);
  res.set("Content-Security-Policy",
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
          "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'");
  return res;
}

// "/v1/tasks/{id}" and "/ws/{client_id}": the prefix and one non-empty segment.
bool one_segment_under(std::string_view path, std::string_view prefix) {
  return path.size() > prefix.size() && path.substr(0, prefix.size()) == prefix &&
         path.find('/', prefix.size()) == std::string_view::npos;
}

response task_response(status code, const tasks::task_record& t) {
  return net::json_text_response(code, tasks::task_text(t));
}

response admission_response(tasks::admission a) {
  if (auto refused = refusal(a)) return std::move(*refused);
  auto res = net::json_text_response(status::accepted, std::move(a.text));
  res.set(http::field::location, "/v1/tasks/" + a.task->id);
  if (a.outcome == tasks::admit_outcome::replayed) res.set("Idempotent-Replayed", "true");
  return res;
}

// `failure` holds a tasks::bad_parameter: an exception_ptr keeps admit_task's frame small.
response bad_parameter_response(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const tasks::bad_parameter& e) {
    return error_response(status::bad_request, e.field == "kind" ? "unknown_kind" : "bad_parameter",
                          e.what());
  }
}

asio::awaitable<response> answer_now(response res) { co_return res; }

asio::awaitable<response> admit_task(app_state& s, task_request r) {
  std::exception_ptr bad;  // co_return cannot appear in a handler
  try {
    co_return admission_response(co_await s.tasks.admit(std::move(r.kind), std::move(r.params),
                                                        std::move(r.key), r.options));
  } catch (const tasks::bad_parameter&) {
    bad = std::current_exception();
  }
  co_return bad_parameter_response(bad);
}

// Not a coroutine itself: reading the request needs no frame.
asio::awaitable<response> post_task(app_state& s, request& req, std::string) {
  auto asked = read_task_request(req);
  if (auto* r = std::get_if<task_request>(&asked)) return admit_task(s, std::move(*r));
  return answer_now(std::move(std::get<response>(asked)));
}

// POST /v1/create-task/: the original's default task, its exact answer.
asio::awaitable<response> create_task(app_state& s, request&, std::string) {
  auto a = co_await s.tasks.admit("sleep", {}, std::nullopt, {});
  if (auto refused = refusal(a)) co_return std::move(*refused);
  auto& id = a.task->id;
  co_return json_response(status::ok, {{"message", "Task " + id + " Queued"}, {"task_id", id}});
}

asio::awaitable<response> delete_task(app_state& s, request&, std::string id) {
  auto [outcome, t] = co_await s.tasks.cancel(std::move(id));
  switch (outcome) {
    case tasks::cancel_outcome::not_found:
      co_return task_not_found();
    case tasks::cancel_outcome::already_finished: {
      auto body = tasks::to_json(*t);
      body["error"] = "already_finished";
      body["detail"] = "the task already finished: " + std::string(tasks::to_string(t->status));
      co_return json_response(status::conflict, body);
    }
    default:
      co_return task_response(status::ok, *t);
  }
}

// POST /v1/tasks/{id}/retry: a failed, cancelled or interrupted task runs again (202).
asio::awaitable<response> retry_task(app_state& s, request&, std::string id) {
  auto [outcome, t] = co_await s.tasks.retry(std::move(id));
  switch (outcome) {
    case tasks::retry_outcome::not_found:
      co_return task_not_found();
    case tasks::retry_outcome::not_retriable: {
      auto body = tasks::to_json(*t);
      body["error"] = "not_retriable";
      body["detail"] = "only a failed, cancelled or interrupted task can be retried; this one is " +
                       std::string(tasks::to_string(t->status));
      co_return json_response(status::conflict, body);
    }
    case tasks::retry_outcome::closed:
      co_return draining_response({{"error", "draining"}, {"detail", shutdown_text}});
    case tasks::retry_outcome::queue_full: {
      auto res = error_response(status::too_many_requests, "queue_full",
                                "the task queue is full (--queue-capacity); retry later");
      res.set(http::field::retry_after, "1");
      co_return res;
    }
    default: {
      auto res = task_response(status::accepted, *t);
      res.set(http::field::location, "/v1/tasks/" + t->id);
      co_return res;
    }
  }
}

// The public routes, matched once by path and then by method. `path` is a route's template (and
// its metrics label); a "{name}" segment (last, or before a fixed suffix such as "/retry")
// matches one non-empty segment, handed to the handler.
using handler = asio::awaitable<response> (*)(app_state&, request&, std::string id);
struct route_row {
  std::string_view path;
  std::string_view alias;  // the same route without its trailing slash (the original's routes)
  http::verb method;
  handler answer;
  bool stream = false;  // a WebSocket route: an upgrade is answered by upgrade()
};

asio::awaitable<response> health(app_state& s, request&, std::string) {
  if (s.phase.draining()) co_return draining_response({{"status", shutdown_text}});
  co_return net::json_text_response(status::ok, R"({"status":"ok"})");  // a probe: constant
}
asio::awaitable<response> queue_length(app_state& s, request&, std::string) {
  auto c = co_await s.tasks.read_counts();
  co_return json_response(status::ok, {{"task_lenth", c.queued + c.running}});
}
asio::awaitable<response> get_task(app_state& s, request&, std::string id) {
  auto t = co_await s.tasks.find(std::move(id));
  if (!t) co_return task_not_found();
  co_return task_response(status::ok, *t);
}
asio::awaitable<response> openapi(app_state&, request&, std::string) {
  co_return asset("application/json", assets::openapi_json);
}
asio::awaitable<response> docs(app_state&, request&, std::string) { co_return docs_page(); }
asio::awaitable<response> plain_get(app_state&, request&, std::string) {
  co_return error_response(status::upgrade_required, "upgrade_required",
                           "this route is a WebSocket stream");
}

constexpr route_row routes[] = {
    {"/v1/health", {}, http::verb::get, health},
    {"/v1/create-task/", "/v1/create-task", http::verb::post, create_task},
    {"/v1/get_queue_length/", "/v1/get_queue_length", http::verb::get, queue_length},
    {"/v1/tasks", {}, http::verb::post, post_task},
    {"/v1/tasks/{task_id}", {}, http::verb::get, get_task},
    {"/v1/tasks/{task_id}", {}, http::verb::delete_, delete_task},
    {"/v1/tasks/{task_id}/retry", {}, http::verb::post, retry_task},
    {"/openapi.json", {}, http::verb::get, openapi},
    {"/docs", {}, http::verb::get, docs},
    {"/v1/events", {}, http::verb::get, plain_get, true},
    {"/ws/{client_id}", {}, http::verb::get, plain_get, true},
};

// The segment a "{name}" template captured (empty for a fixed path), or nothing.
std::optional<std::string> match(const route_row& r, std::string_view path) {
  if (auto brace = r.path.find('{'); brace != std::string_view::npos) {
    auto prefix = r.path.substr(0, brace);
    auto suffix = r.path.substr(r.path.find('}') + 1);  // "/retry", or nothing
    if (path.size() <= suffix.size() || path.substr(path.size() - suffix.size()) != suffix)
      return std::nullopt;
    path.remove_suffix(suffix.size());
    if (!one_segment_under(path, prefix)) return std::nullopt;
    return std::string(path.substr(prefix.size()));
  }
  if (path == r.path || (!r.alias.empty() && path == r.alias)) return std::string();
  return std::nullopt;
}

// `route` is set to the template of the route that answered, for the metrics.
asio::awaitable<response> answer(app_state& s, request& req, std::string_view& route) {
  auto url = boost::urls::parse_origin_form(req.target());
  if (!url)
    co_return error_response(status::bad_request, "bad_request",
                             "the request target is not a valid path");
  std::string path = url->path();
  std::string allow;  // the methods of a route whose path matched
  for (const auto& r : routes) {
    auto id = match(r, path);
    if (!id) continue;
    route = r.path;
    if (r.method == req.method()) co_return co_await r.answer(s, req, std::move(*id));
    if (!allow.empty()) allow += ", ";
    allow += http::to_string(r.method);
  }
  if (!allow.empty()) co_return method_not_allowed(allow);
  co_return not_found();
}

std::optional<std::uint64_t> parse_seq(std::string_view text) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || p != text.data() + text.size()) return std::nullopt;
  return v;
}

std::variant<response, stream::stream_request> upgrade(app_state& s, const request& req,
                                                       std::string_view& route) {
  auto url = boost::urls::parse_origin_form(req.target());
  if (!url)
    return error_response(status::bad_request, "bad_request",
                          "the request target is not a valid path");
  std::string path = url->path();
  stream::stream_request what;
  std::optional<std::string> id;
  for (const auto& r : routes) {
    if (!r.stream) continue;
    id = match(r, path);
    if (id) {
      route = r.path;
      break;
    }
  }
  if (!id) return not_found();
  // /ws/{client_id} names the client; /v1/events gets a made-up id.
  what.client_id = id->empty() ? tasks::new_task_id() : std::move(*id);
  if (s.phase.draining())
    return draining_response({{"error", "draining"}, {"detail", shutdown_text}});
  // Upgrades checked at once may each pass: the overshoot is bounded by the network threads.
  if (s.streams.open() >= s.cfg.max_websockets) {
    auto res = error_response(status::service_unavailable, "too_many_streams",
                              "the server holds --max-websockets streams; retry later");
    res.set(http::field::retry_after, "1");
    return res;
  }
  auto params = url->params();
  if (auto it = params.find("since"); it != params.end()) {
    auto seq = parse_seq((*it).value);
    if (!seq)
      return error_response(status::bad_request, "bad_parameter",
                            "since must be a sequence number");
    what.since = seq;
  }
  if (auto it = params.find("epoch"); it != params.end()) what.epoch = (*it).value;
  return what;
}

// Every answer is counted and timed by route.
asio::awaitable<response> measured(app_state& s, request& req) {
  auto start = std::chrono::steady_clock::now();
  std::string_view route = "other";
  std::optional<response> res;
  try {
    res = co_await answer(s, req, route);
  } catch (const tasks::store_unavailable&) {
    res = store_unavailable_response();
  }
  s.metrics.http_answered(route, res->result_int(), std::chrono::steady_clock::now() - start);
  co_return std::move(*res);
}

// An accepted upgrade counts as 101.
std::variant<response, net::upgrade_opener> measured_upgrade(app_state& s, const request& req) {
  auto start = std::chrono::steady_clock::now();
  std::string_view route = "other";
  auto what = upgrade(s, req, route);
  auto* refused = std::get_if<response>(&what);
  s.metrics.http_answered(route, refused ? refused->result_int() : 101,
                          std::chrono::steady_clock::now() - start);
  if (refused) return std::move(*refused);
  return stream::stream_opener(std::move(std::get<stream::stream_request>(what)), s.streams);
}

}  // namespace

net::http_routes public_routes(app_state& s) {
  return {[&s](request& req) { return measured(s, req); },
          [&s](const request& req) { return measured_upgrade(s, req); }};
}

}  // namespace quiesce::app
