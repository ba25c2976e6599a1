// The registered kinds: one declaration and one add() line per kind.
#include "tasks/task_kind.hpp"

namespace quiesce::tasks {

task_kind sleep_kind(const kind_settings& s);  // kind_sleep.cpp
task_kind cpu_kind(const kind_settings& s);    // kind_cpu.cpp

kind_registry builtin_kinds(const kind_settings& s) {
  kind_registry r;
  r.add(sleep_kind(s));
  r.add(cpu_kind(s));
  return r;
}

}  // namespace quiesce::tasks
