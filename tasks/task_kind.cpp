#include "tasks/task_kind.hpp"

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

boost::asio::awaitable<run_outcome> run_kind(const task_kind& k, task_context ctx) {
  run_outcome out;
  try {
    out.result = co_await k.run(std::move(ctx));
  } catch (...) {
    out.failure = std::current_exception();
  }
  co_return out;
}

}  // namespace quiesce::tasks
