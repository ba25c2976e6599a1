// The operator's command kinds (docs/kinds.md): read once at start-up from --kinds, a JSON file
// such as a Kubernetes ConfigMap. Clients name a kind; only this file names programs.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace quiesce::command {

// One kind as the file describes it, every default filled in.
struct kind_spec {
  std::string name;
  std::vector<std::string> command;  // an executable file (made absolute), then its arguments
  std::string cwd;                   // empty: the server's own working directory (made absolute)
  std::map<std::string, std::string> env;
  std::chrono::milliseconds timeout{std::chrono::hours(1)};  // per attempt
  std::chrono::milliseconds kill_grace{std::chrono::seconds(5)};
  int max_attempts = 1;
  std::chrono::milliseconds backoff{std::chrono::seconds(1)};
  std::chrono::milliseconds backoff_max{std::chrono::hours(1)};
  unsigned concurrency = 0;  // 0: no cap of its own (--workers is)
};

// Reads and checks the file; throws std::invalid_argument with the reason (not JSON, an unknown
// key, a bad value, a command that is not an executable file, a built-in kind's name).
std::vector<kind_spec> read_kinds_file(const std::string& path);

// The same check over the file's text; relative paths (the program, cwd) are taken from `base`.
std::vector<kind_spec> parse_kinds(const std::string& text, const std::string& origin,
                                   const std::string& base);

}  // namespace quiesce::command
