// Where the current state of task records is read from. Durability is the journal's job
// (task_journal.hpp): reads never wait for a disk.
#pragma once

#include "tasks/task.hpp"

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace quiesce::tasks {

class task_store {
 public:
  virtual ~task_store() = default;
  // Adds a new task; with an idempotency key, remembers the key for it too.
  virtual void insert(const task_record& t) = 0;
  virtual void update(const task_record& t) = 0;
  // Forgets a task whose admission could not be stored.
  virtual void erase(std::string_view id) = 0;
  virtual std::optional<task_record> get(std::string_view id) const = 0;
  virtual bool contains(std::string_view id) const = 0;  // get() without the copy
  virtual std::optional<task_record> find_by_idempotency_key(std::string_view key) const = 0;
  virtual std::array<std::size_t, status_count> count_by_status() const = 0;
};

}  // namespace quiesce::tasks
