#include "app/task_request.hpp"

#include "support/json_text.hpp"
#include "support/log.hpp"

#include <boost/json/parse.hpp>

#include <cmath>

namespace quiesce::app {
namespace json = boost::json;
namespace http = net::http;
using http::status;
using net::error_response;

namespace {

constexpr double year_seconds = 365 * 86400.0;

net::response bad(const std::string& why) {
  return error_response(status::bad_request, "bad_parameter", why);
}

// {"kind":K,"params":{...}}: the kind's parameters are `params` (the flat form, parameters beside
// the kind, stays valid for the built-in kinds). Nothing else may stand beside `params`.
std::optional<net::response> take_nested_params(json::object& body) {
  auto* p = body.if_contains("params");
  if (!p) return std::nullopt;
  if (!p->is_object()) return bad("params must be a JSON object");
  json::object inner = std::move(p->as_object());
  body.erase("params");
  if (!body.empty())
    return bad("unknown field '" + std::string(body.begin()->key()) +
               "': a kind's parameters go inside params");
  body = std::move(inner);
  return std::nullopt;
}

// A number in [lo, hi] (an integer where `integer`), else why not.
std::optional<std::string> check_number(const json::value& v, const char* field, double lo,
                                        double hi, bool integer) {
  bool ok = integer ? (v.is_int64() || v.is_uint64()) : v.is_number();
  double d = ok ? v.to_number<double>() : 0;
  if (ok && std::isfinite(d) && d >= lo && d <= hi) return std::nullopt;
  return std::string(field) + " must be " + (integer ? "an integer" : "a number") + " between " +
         support::json_text(json::value(lo)) + " and " + support::json_text(json::value(hi));
}

// The job options, taken out of the body so that the kind sees only its parameters.
std::optional<net::response> take_job_options(json::object& body, tasks::job_options& o) {
  auto take = [&body](const char* field) -> std::optional<json::value> {
    auto it = body.find(field);
    if (it == body.end()) return std::nullopt;
    auto v = it->value();
    body.erase(it);
    return v;
  };
  if (auto v = take("max_attempts")) {
    if (auto why = check_number(*v, "max_attempts", 1, 1000, true)) return bad(*why);
    o.max_attempts = static_cast<int>(v->to_number<std::int64_t>());
  }
  if (auto v = take("timeout_seconds")) {
    if (auto why = check_number(*v, "timeout_seconds", 0.001, year_seconds, false))
      return bad(*why);
    o.timeout_seconds = v->to_number<double>();
  }
  if (auto v = take("priority")) {
    if (auto why = check_number(*v, "priority", 0, 9, true)) return bad(*why);
    o.priority = static_cast<int>(v->to_number<std::int64_t>());
  }
  auto run_at = take("run_at");
  auto delay = take("delay_seconds");
  if (run_at && delay) return bad("give run_at or delay_seconds, not both");
  if (run_at) {
    o.run_at = run_at->is_string() ? log::parse_time(run_at->as_string()) : std::nullopt;
    if (!o.run_at) return bad("run_at must be an RFC 3339 time, such as 2026-12-08T10:00:00Z");
  }
  if (delay) {
    if (auto why = check_number(*delay, "delay_seconds", 0, year_seconds, false)) return bad(*why);
    o.run_at = std::chrono::system_clock::now() +
               std::chrono::duration_cast<std::chrono::system_clock::duration>(
                   std::chrono::duration<double>(delay->to_number<double>()));
  }
  return std::nullopt;
}

std::variant<task_request, net::response> read_body(const net::request& req, task_request r) {
  auto type = req[http::field::content_type];
  if (type.substr(0, type.find(';')) != "application/json")
    return error_response(status::unsupported_media_type, "unsupported_media_type",
                          "send the task as Content-Type: application/json");
  json::error_code ec;
  auto v = json::parse(req.body(), ec);
  if (ec)
    return error_response(status::bad_request, "malformed_json",
                          "the body is not valid JSON: " + ec.message());
  if (!v.is_object())
    return error_response(status::bad_request, "malformed_json", "the body must be a JSON object");
  r.params = std::move(v.as_object());
  if (auto k = r.params.if_contains("kind")) {
    if (!k->is_string()) return bad("kind must be a string");
    r.kind = k->as_string();
    r.params.erase("kind");
  }
  if (auto refused = take_job_options(r.params, r.options)) return std::move(*refused);
  if (auto refused = take_nested_params(r.params)) return std::move(*refused);
  return r;
}

}  // namespace

std::variant<task_request, net::response> read_task_request(const net::request& req) {
  task_request r;
  if (auto k = req["Idempotency-Key"]; !k.empty()) {
    if (k.size() > 200) return bad("Idempotency-Key is longer than 200 characters");
    r.key = std::string(k);
  }
  if (req.body().empty()) return r;
  return read_body(req, std::move(r));
}

}  // namespace quiesce::app
