// Task records in memory: the whole store with --store memory, and the cache every read is
// answered from with --store sqlite (the journal makes changes durable; see task_journal.hpp).
// Finished tasks are kept for `retention` more finishes, then forgotten with their idempotency
// keys, oldest first: memory stays bounded however long the process runs.
#pragma once

#include "support/adaptive_mutex.hpp"
#include "tasks/task_store.hpp"

#include <boost/unordered/unordered_flat_map.hpp>

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace quiesce::tasks {

class memory_task_store final : public task_store {
 public:
  explicit memory_task_store(std::size_t retention) : retention_(retention) {}

  void insert(const task_record& t) override;
  void update(const task_record& t) override;
  void erase(std::string_view id) override;
  std::optional<task_record> get(std::string_view id) const override;
  bool contains(std::string_view id) const override;
  std::optional<task_record> find_by_idempotency_key(std::string_view key) const override;
  std::array<std::size_t, status_count> count_by_status() const override;

 private:
  void forget_oldest();                 // under mutex_
  void drop_key(const task_record& t);  // under mutex_

  // Looked up by string_view without building a std::string: an id is too long for the small
  // string buffer, so each lookup by a temporary string was an allocation.
  struct text_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  mutable support::adaptive_mutex mutex_;
  // Open addressing: a task is looked up about six times, and std::unordered_map's chained
  // buckets made each lookup touch a node of some other task first (a cache miss once many
  // tasks are kept; bench/HISTORY.md).
  boost::unordered_flat_map<std::string, task_record, text_hash, std::equal_to<>> tasks_;
  // idempotency key -> task id
  std::unordered_map<std::string, std::string, text_hash, std::equal_to<>> keys_;
  std::array<std::size_t, status_count> counts_{};
  std::size_t retention_;
  std::deque<std::string> finished_;  // ids in the order they finished
};

}  // namespace quiesce::tasks
