#include "tasks/task_kind.hpp"

#include "support/json_text.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>

namespace quiesce::tasks {

void kind_registry::add(task_kind k) {
  auto name = k.name;
  kinds_.emplace(std::move(name), std::move(k));
}

const task_kind* kind_registry::find(std::string_view name) const {
  auto it = kinds_.find(name);
  return it == kinds_.end() ? nullptr : &it->second;
}

std::vector<std::string> kind_registry::names() const {
  std::vector<std::string> out;
  for (auto& [name, k] : kinds_) out.push_back(name);
  return out;
}

void known_fields(const boost::json::object& p, std::initializer_list<std::string_view> fields) {
  for (auto& [name, v] : p)
    if (std::find(fields.begin(), fields.end(), std::string_view(name)) == fields.end())
      throw bad_parameter(std::string(name), "unknown parameter '" + std::string(name) + "'");
}

double number_param(const boost::json::object& p, std::string_view field, double fallback,
                    double lo, double hi) {
  auto it = p.find(field);
  if (it == p.end() || it->value().is_null()) return fallback;
  auto& v = it->value();
  if (!v.is_number())
    throw bad_parameter(std::string(field), std::string(field) + " must be a number");
  double d = v.to_number<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    std::ostringstream why;
    why << field << " must be between " << lo << " and " << hi;
    throw bad_parameter(std::string(field), why.str());
  }
  return d;
}

std::string timed_out_after(std::chrono::milliseconds limit) {
  return "timed out after " +
         support::json_text(boost::json::value(std::chrono::duration<double>(limit).count())) +
         " s";
}

task_record admitted_task(const kind_registry& kinds, std::string_view kind,
                          const boost::json::object& params,
                          std::optional<std::string> idempotency_key, const job_options& options) {
  const task_kind* k = kinds.find(kind);
  if (!k) throw bad_parameter("kind", "unknown kind '" + std::string(kind) + "'");
  if (options.timeout_seconds && k->max_timeout_seconds &&
      *options.timeout_seconds > *k->max_timeout_seconds) {
    std::ostringstream why;
    why << "timeout_seconds must be at most the kind's, " << *k->max_timeout_seconds;
    throw bad_parameter("timeout_seconds", why.str());
  }
  return queued_task(k->name, k->validate(params), std::move(idempotency_key), options,
                     k->max_attempts);
}

namespace {
// The kind raced against its timeout: cancelled (terminal) when the timer wins. Its own coroutine,
// so that run_kind's frame, one per task, has no timer in it.
boost::asio::awaitable<boost::json::value> run_with_timeout(const task_kind& k, task_context ctx,
                                                            std::chrono::milliseconds limit) {
  using namespace boost::asio::experimental::awaitable_operators;
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, limit);
  auto ended = co_await (k.run(std::move(ctx)) || timer.async_wait(boost::asio::use_awaitable));
  if (ended.index() == 1) throw std::runtime_error(timed_out_after(limit));
  co_return std::get<0>(std::move(ended));
}
}  // namespace

boost::asio::awaitable<run_outcome> run_kind(const task_kind& k, task_context ctx) {
  run_outcome out;
  try {
    if (ctx.timeout && !k.keeps_its_timeout) {
      auto limit = *ctx.timeout;
      out.result = co_await run_with_timeout(k, std::move(ctx), limit);
    } else {
      out.result = co_await k.run(std::move(ctx));
    }
  } catch (...) {
    out.failure = std::current_exception();
  }
  co_return out;
}

}  // namespace quiesce::tasks
