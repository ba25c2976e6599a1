// Where task changes become durable. Every change of a task is published as an event; a journal
// stores the event and the task's new state in one transaction, then hands the event back for
// delivery. The bus delivers nothing before that, so no client sees a change a crash could undo.
#pragma once

#include "tasks/task.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace quiesce::tasks {

struct stream_event {
  std::uint64_t seq;
  std::string task_id;  // empty: for every stream, whatever it follows (a gap)
  std::string text;     // the serialised JSON frame, shared by every stream
};
using event_ptr = std::shared_ptr<const stream_event>;

struct journal_entry {
  task_record task;  // the state after the change
  event_ptr event;
  // Set for an admission, whose 2xx waits for it: `false` means the task was not stored, and
  // the entry is dropped rather than retried (its client is told 503 instead).
  std::function<void(bool stored)> on_stored;
};

class task_journal {
 public:
  virtual ~task_journal() = default;
  // Called in seq order with the bus locked: it must queue the entry, never wait for storage.
  virtual void append(journal_entry e) = 0;
};

}  // namespace quiesce::tasks
