// Task records in memory: the whole store with --store memory, and the cache every read is
// answered from with --store sqlite (the journal makes changes durable; see task_journal.hpp).
// Finished tasks are kept for `retention` more finishes, then forgotten with their idempotency
// keys, oldest first: memory stays bounded however long the process runs.
#pragma once

#include "tasks/task_store.hpp"

#include <deque>
#include <mutex>
#include <unordered_map>

namespace quiesce::tasks {

class memory_task_store final : public task_store {
 public:
  explicit memory_task_store(std::size_t retention) : retention_(retention) {}

  void insert(const task_record& t) override;
  void update(const task_record& t) override;
  void erase(std::string_view id) override;
  std::optional<task_record> get(std::string_view id) const override;
  std::optional<task_record> find_by_idempotency_key(std::string_view key) const override;
  std::array<std::size_t, status_count> count_by_status() const override;

 private:
  void forget_oldest();                 // under mutex_
  void drop_key(const task_record& t);  // under mutex_

  mutable std::mutex mutex_;
  std::unordered_map<std::string, task_record> tasks_;
  std::unordered_map<std::string, std::string> keys_;  // idempotency key -> task id
  std::array<std::size_t, status_count> counts_{};
  std::size_t retention_;
  std::deque<std::string> finished_;  // ids in the order they finished
};

}  // namespace quiesce::tasks
