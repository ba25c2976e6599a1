#include "tasks/run_queue.hpp"

namespace quiesce::tasks {

void run_queue::push(const std::string& id, int priority) {
  order key{priority, arrivals_++};
  runnable_.emplace(key, id);
  runnable_at_[id] = key;
}

void run_queue::schedule(const std::string& id, int priority, time_point at) {
  scheduled_at_[id] = scheduled_.emplace(at, waiting{id, priority});
}

void run_queue::add(const std::string& id, int priority, const std::optional<time_point>& run_at) {
  if (run_at)
    schedule(id, priority, *run_at);
  else
    push(id, priority);
}

std::optional<std::string> run_queue::pop() {
  if (runnable_.empty()) return std::nullopt;
  auto node = runnable_.extract(runnable_.begin());
  runnable_at_.erase(node.mapped());
  return std::move(node.mapped());
}

bool run_queue::erase(const std::string& id) {
  if (auto it = runnable_at_.find(id); it != runnable_at_.end()) {
    runnable_.erase(it->second);
    runnable_at_.erase(it);
    return true;
  }
  if (auto it = scheduled_at_.find(id); it != scheduled_at_.end()) {
    scheduled_.erase(it->second);
    scheduled_at_.erase(it);
    return true;
  }
  return false;
}

std::vector<std::string> run_queue::promote_due(time_point now) {
  std::vector<std::string> due;
  while (!scheduled_.empty() && scheduled_.begin()->first <= now) {
    auto node = scheduled_.extract(scheduled_.begin());
    scheduled_at_.erase(node.mapped().id);
    push(node.mapped().id, node.mapped().priority);
    due.push_back(std::move(node.mapped().id));
  }
  return due;
}

std::optional<run_queue::time_point> run_queue::next_due() const {
  if (scheduled_.empty()) return std::nullopt;
  return scheduled_.begin()->first;
}

std::vector<std::string> run_queue::runnable_ids() const {
  std::vector<std::string> ids;
  ids.reserve(runnable_.size());
  for (auto& [key, id] : runnable_) ids.push_back(id);
  return ids;
}

std::vector<std::string> run_queue::scheduled_ids() const {
  std::vector<std::string> ids;
  ids.reserve(scheduled_.size());
  for (auto& [at, w] : scheduled_) ids.push_back(w.id);
  return ids;
}

void run_queue::clear_runnable() {
  runnable_.clear();
  runnable_at_.clear();
}

}  // namespace quiesce::tasks
