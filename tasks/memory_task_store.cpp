#include "tasks/memory_task_store.hpp"

#include <stdexcept>

namespace quiesce::tasks {

void memory_task_store::insert(const task_record& t) {
  std::lock_guard lock(mutex_);
  if (!tasks_.emplace(t.id, t).second) throw std::logic_error("duplicate task id " + t.id);
  // The newest task holding a key wins (a durable store loads them oldest first).
  if (t.idempotency_key) keys_.insert_or_assign(*t.idempotency_key, t.id);
  ++counts_[static_cast<std::size_t>(t.status)];
  if (is_final(t.status)) {  // loaded from a durable store, in the order they finished
    finished_.push_back(t.id);
    if (finished_.size() > retention_) forget_oldest();
  }
}

void memory_task_store::erase(std::string_view id) {
  std::lock_guard lock(mutex_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  --counts_[static_cast<std::size_t>(it->second.status)];
  drop_key(it->second);
  tasks_.erase(it);
}

void memory_task_store::update(const task_record& t) {
  std::lock_guard lock(mutex_);
  auto it = tasks_.find(t.id);
  if (it == tasks_.end()) throw std::logic_error("update of unknown task " + t.id);
  --counts_[static_cast<std::size_t>(it->second.status)];
  ++counts_[static_cast<std::size_t>(t.status)];
  bool finishes = is_final(t.status) && !is_final(it->second.status);
  it->second = t;
  if (finishes) {
    finished_.push_back(t.id);
    if (finished_.size() > retention_) forget_oldest();
  }
}

void memory_task_store::drop_key(const task_record& t) {
  if (!t.idempotency_key) return;
  // Only if the key still names this task (a newer one may hold it).
  if (auto k = keys_.find(*t.idempotency_key); k != keys_.end() && k->second == t.id)
    keys_.erase(k);
}

void memory_task_store::forget_oldest() {
  auto it = tasks_.find(finished_.front());
  finished_.pop_front();
  --counts_[static_cast<std::size_t>(it->second.status)];
  drop_key(it->second);
  tasks_.erase(it);
}

std::optional<task_record> memory_task_store::get(std::string_view id) const {
  std::lock_guard lock(mutex_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return std::nullopt;
  return it->second;
}

bool memory_task_store::contains(std::string_view id) const {
  std::lock_guard lock(mutex_);
  return tasks_.contains(id);
}

std::optional<task_record> memory_task_store::find_by_idempotency_key(std::string_view key) const {
  std::lock_guard lock(mutex_);
  auto k = keys_.find(key);
  if (k == keys_.end()) return std::nullopt;
  return tasks_.at(k->second);
}

std::array<std::size_t, status_count> memory_task_store::count_by_status() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

}  // namespace quiesce::tasks
