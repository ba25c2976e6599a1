// A child process started for one attempt of a command kind: its own session and process group,
// descriptors 0-3 as pipes to this process and no other, an environment of its own, and a pidfd
// to wait on. Started with posix_spawn (glibc's uses CLONE_VFORK), never fork(): a fork of this
// multi-threaded process would copy locks other threads hold (Boost.Process v2's default
// launcher forks on the shared io_context: boostorg/process #430).
#pragma once

#include <sys/types.h>
#include <sys/wait.h>

#include <string>
#include <utility>
#include <vector>

namespace quiesce::command {

// A descriptor with one owner, closed when it goes.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept;
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd();
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

struct spawn_request {
  std::vector<std::string> argv;  // argv[0] is an absolute path
  std::string cwd;                // empty: this process's
  std::vector<std::string> env;   // "NAME=value", the whole environment
};

struct spawned_child {
  pid_t pid = -1;  // also its process group's and its session's id
  unique_fd pidfd;
  unique_fd stdin_w, stdout_r, stderr_r, channel_r;  // this process's ends, close-on-exec
};

// Starts the child; throws std::system_error naming the program (ENOENT, EACCES, ENOEXEC, ...).
spawned_child spawn_child(const spawn_request& r);

// Sends `sig` to every process of the child's group; a group already gone is not an error.
void signal_group(pid_t group, int sig);

// Reaps the child `pid`, whose pidfd said it exited; returns what waitid reports.
siginfo_t reap_child(pid_t pid, int pidfd);

// "exit 3", "killed by SIGSEGV", ...
std::string describe_end(const siginfo_t& info);

// Makes orphaned descendants of this process its children (PR_SET_CHILD_SUBREAPER), so that a
// grandchild whose parent exited is still reaped here, whether or not this process is PID 1.
void become_subreaper();

// Reaps every exited child that spawn_child did not start (orphans handed to this process),
// leaving the statuses of its own children to reap_child. Returns how many it reaped.
int reap_strangers();

}  // namespace quiesce::command
