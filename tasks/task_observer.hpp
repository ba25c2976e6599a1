// Told of every status a task reaches (not of its progress): how metrics learn about tasks
// without the task layer knowing about them.
#pragma once

#include "tasks/task.hpp"

namespace quiesce::tasks {

class task_observer {
 public:
  virtual ~task_observer() = default;
  // `t` is the task after the change. Called on worker and network threads, sometimes with the
  // service's lock held: it must only count.
  virtual void status_changed(const task_record& t) = 0;
};

}  // namespace quiesce::tasks
