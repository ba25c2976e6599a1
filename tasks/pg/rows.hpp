// Task records to and from the columns of quiesce_tasks.
#pragma once

#include "tasks/pg/connection.hpp"
#include "tasks/task.hpp"

namespace quiesce::tasks::pg {

inline constexpr int task_column_count = 20;
// The columns read_task() expects, in order; `prefix` qualifies them ("t.").
std::string task_columns(std::string_view prefix = "");
// Reads the record at `row`, its columns starting at `first`.
task_record read_task(const result& r, int row, int first = 0);

std::string micros(task_record::time_point t);
param micros(const std::optional<task_record::time_point>& t);
std::string number(double v);

}  // namespace quiesce::tasks::pg
