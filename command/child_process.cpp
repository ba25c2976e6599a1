#include "command/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <mutex>
#include <set>
#include <system_error>

namespace quiesce::command {

namespace {

// The children spawn_child started and reap_child has not reaped: reap_strangers leaves them.
// Spawning and reaping hold the lock, so a child that exits at once is never taken for an orphan.
std::mutex children_mutex;
// waitid's P_PIDFD (Linux 5.4), which glibc 2.36's <sys/wait.h> does not name.
constexpr int p_pidfd = 3;
std::set<pid_t> own_children;  // guarded by children_mutex

[[noreturn]] void fail(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

struct pipe_pair {
  unique_fd read, write;
};

pipe_pair make_pipe() {
  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) fail(errno, "pipe2");
  return {unique_fd(fds[0]), unique_fd(fds[1])};
}

// posix_spawn's attribute and file actions, destroyed on every way out.
struct spawn_setup {
  posix_spawnattr_t attr{};
  posix_spawn_file_actions_t actions{};
  spawn_setup() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~spawn_setup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  spawn_setup(const spawn_setup&) = delete;
  spawn_setup& operator=(const spawn_setup&) = delete;
};

// Its own session (so its own process group), every signal back to its default (this process
// ignores SIGPIPE, and ignored signals stay ignored across exec) and none blocked.
void set_attributes(spawn_setup& s) {
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&s.attr, &all);
  posix_spawnattr_setsigmask(&s.attr, &none);
  posix_spawnattr_setflags(&s.attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
}

// 0-3 from the pipes, then every other descriptor closed: Asio opens sockets without
// SOCK_CLOEXEC, and a child holding the listeners would keep their ports after this process died.
void set_descriptors(spawn_setup& s, const std::array<int, 4>& child_ends, const std::string& cwd) {
  for (int fd = 0; fd < 4; ++fd) posix_spawn_file_actions_adddup2(&s.actions, child_ends[fd], fd);
  posix_spawn_file_actions_addclosefrom_np(&s.actions, 4);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&s.actions, cwd.c_str());
}

std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(const_cast<char*>(s.c_str()));  // NOLINT: exec's signature
  out.push_back(nullptr);
  return out;
}

}  // namespace

unique_fd& unique_fd::operator=(unique_fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

unique_fd::~unique_fd() {
  if (fd_ >= 0) ::close(fd_);
}

spawned_child spawn_child(const spawn_request& r) {
  auto in = make_pipe(), out = make_pipe(), err = make_pipe(), channel = make_pipe();
  spawn_setup setup;
  set_attributes(setup);
  set_descriptors(setup, {in.read.get(), out.write.get(), err.write.get(), channel.write.get()},
                  r.cwd);
  auto argv = c_strings(r.argv);
  auto envp = c_strings(r.env);
  spawned_child c;
  std::lock_guard lock(children_mutex);
  int rc = ::posix_spawn(&c.pid, argv[0], &setup.actions, &setup.attr, argv.data(), envp.data());
  if (rc != 0) fail(rc, "cannot start " + r.argv.front());
  own_children.insert(c.pid);
  // The system call itself: glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, c.pid, 0));
  if (pidfd < 0) {
    int e = errno;
    ::kill(-c.pid, SIGKILL);
    ::waitpid(c.pid, nullptr, 0);  // it was killed: this returns at once
    own_children.erase(c.pid);
    fail(e, "pidfd_open");
  }
  c.pidfd = unique_fd(pidfd);
  c.stdin_w = std::move(in.write);
  c.stdout_r = std::move(out.read);
  c.stderr_r = std::move(err.read);
  c.channel_r = std::move(channel.read);
  return c;  // the child's ends close here: EOF comes when the child's processes close theirs
}

void signal_group(pid_t group, int sig) {
  if (group > 0) ::kill(-group, sig);
}

siginfo_t reap_child(pid_t pid, int pidfd) {
  siginfo_t info{};
  std::lock_guard lock(children_mutex);
  while (::waitid(static_cast<idtype_t>(p_pidfd), static_cast<id_t>(pidfd), &info, WEXITED) != 0 &&
         errno == EINTR) {
  }
  own_children.erase(pid);
  return info;
}

std::string describe_end(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) return "exit " + std::to_string(info.si_status);
  const char* name = ::sigabbrev_np(info.si_status);
  return "killed by " +
         (name ? "SIG" + std::string(name) : "signal " + std::to_string(info.si_status));
}

void become_subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

int reap_strangers() {
  std::lock_guard lock(children_mutex);
  int reaped = 0;
  for (;;) {
    siginfo_t info{};
    // WNOWAIT: look without taking, so that one of our own children's status stays for its owner.
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
      return reaped;
    // Ours: its owner reaps it soon and calls this again for whatever waits behind it.
    if (own_children.count(info.si_pid)) return reaped;
    ::waitpid(info.si_pid, nullptr, WNOHANG);
    ++reaped;
  }
}

}  // namespace quiesce::command
