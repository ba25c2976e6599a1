// The limit command kinds are measured against (bench/README.md, "Command kinds"): a bare loop of
// posix_spawn and waitpid, `--parallel` loops at once, as quiesce's workers run them, with nothing
// in between. Prints {"spawns":N,"seconds":S,"per_second":R}.
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: quiesce-spawn-loop COUNT PARALLEL PROGRAM [ARG...]\n");
    return 2;
  }
  const int count = std::atoi(argv[1]);
  const int parallel = std::atoi(argv[2]);
  std::vector<char*> args(argv + 3, argv + argc);
  args.push_back(nullptr);
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> loops;
  loops.reserve(static_cast<std::size_t>(parallel));
  for (int p = 0; p < parallel; ++p)
    loops.emplace_back([&, p] {
      for (int i = p; i < count; i += parallel) {
        pid_t pid = 0;
        if (posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) std::abort();
        int status = 0;
        waitpid(pid, &status, 0);
      }
    });
  for (auto& t : loops) t.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"spawns\":%d,\"seconds\":%.3f,\"per_second\":%.1f}\n", count, s, count / s);
}
