#include "cli/task_view.hpp"

#include "cli/task_event.hpp"
#include "support/json_text.hpp"

#include <cmath>
#include <cstdio>
#include <iostream>

namespace quiesce::cli {

void task_view::show(const boost::json::object& task) {
  if (!terminal_) {
    std::cout << support::json_text(task) << '\n' << std::flush;
    return;
  }
  auto id = std::string(field(task, "task_id"));
  auto status = field(task, "status");
  double progress = 0;
  if (auto p = task.if_contains("progress"); p && p->is_number()) progress = p->to_number<double>();
  if (!bar_task_.empty() && bar_task_ != id) end_bar();
  constexpr int width = 30;
  int filled = static_cast<int>(std::lround(progress * width));
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.append(static_cast<std::size_t>(width - filled), '.');
  std::printf("\r\033[K%.8s %s [%s] %3d %% %.*s", id.c_str(),
              std::string(field(task, "kind")).c_str(), bar.c_str(),
              static_cast<int>(std::lround(progress * 100)), static_cast<int>(status.size()),
              status.data());
  if (task.contains("requeued")) std::printf(" (requeued: runs again after a restart)");
  bar_task_ = id;
  if (is_final(status)) {
    if (auto e = field(task, "error"); !e.empty())
      std::printf(": %.*s", static_cast<int>(e.size()), e.data());
    end_bar();
  }
  std::fflush(stdout);
}

void task_view::note(std::string_view line) {
  if (terminal_ && !bar_task_.empty()) {
    std::printf("\r\033[K");  // the bar is redrawn by the next event
    std::fflush(stdout);
    bar_task_.clear();
  }
  std::cerr << "quiesce-cli: " << line << std::endl;
}

void task_view::end_bar() {
  std::printf("\n");
  bar_task_.clear();
}

}  // namespace quiesce::cli
