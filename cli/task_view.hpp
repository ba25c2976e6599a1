// How followed tasks are shown: on a terminal a progress bar redrawn in place, piped one JSON
// line per event exactly as the server sent it (plus `caught_up` records read over HTTP).
// Notes (reconnects, errors) go to stderr either way, so stdout stays machine-readable.
#pragma once

#include <boost/json/object.hpp>

#include <string>
#include <string_view>

namespace quiesce::cli {

class task_view {
 public:
  explicit task_view(bool terminal) : terminal_(terminal) {}

  void show(const boost::json::object& task);
  void note(std::string_view line);
  bool terminal() const { return terminal_; }

 private:
  void end_bar();  // the bar's line is finished: later output starts on a new one

  bool terminal_;
  std::string bar_task_;  // the task whose bar is on the current line, if any
};

}  // namespace quiesce::cli
