// One attempt of a command kind, from spawn to reap (docs/kinds.md): the parameters written to
// stdin, descriptor 3 read for progress, checkpoints and the result, stdout and stderr always
// drained (logged, and a tail kept), and the child stopped by its group when the attempt must end.
#pragma once

#include "command/child_process.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

namespace quiesce::command {

// Filled from the configuration (app/settings.cpp; every default is in app/config.hpp).
struct output_limits {
  std::size_t tail_bytes{};            // of stdout and stderr, kept in the record
  std::size_t log_bytes{};             // of each of stdout and stderr, logged per attempt
  std::size_t line_bytes{};            // the longest descriptor-3 line read
  std::chrono::milliseconds linger{};  // how long the pipes are read after the child exited
};

struct attempt_request {
  spawn_request spawn;
  std::string input;  // stdin: one JSON object and a newline
  std::string task_id;
  std::chrono::milliseconds timeout{};
  std::chrono::milliseconds kill_grace{};
};

// What descriptor 3 says while the child runs; called on the caller's executor, never after
// run_command returned.
struct channel_handlers {
  std::function<void(double progress, std::optional<std::string> message)> progress;
  std::function<void(boost::json::value checkpoint)> checkpoint;
};

struct attempt_end {
  enum class cause { exited, timed_out };
  cause why = cause::exited;
  bool succeeded = false;                    // exited 0 in time
  std::string verdict;                       // "exit 0", "exit 3", "killed by SIGSEGV"
  std::optional<boost::json::value> result;  // its last {"result": ...}
  std::string output;                        // the tail of stdout and stderr
  std::string stderr_last;                   // the last line of stderr
};

// Runs one attempt to its end. The caller's cancellation (a DELETE, the shutdown deadline) stops
// it like its timeout does: SIGTERM to the group, SIGKILL `kill_grace` later; once every process
// of it is gone and reaped, the cancellation is rethrown. Throws std::system_error when the
// program cannot be started.
boost::asio::awaitable<attempt_end> run_command(attempt_request request, channel_handlers on,
                                                output_limits limits);

}  // namespace quiesce::command
