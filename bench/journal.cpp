// The sqlite journal alone, at a fixed group-commit size: what storing a task costs its writer
// thread, without the network threads and wrk that share the two cores in a POST run (their
// scheduling moved a run's batch sizes, and so its cost per task, by a third from round to round).
// Each round commits `batch` new tasks (queued) together with the running and succeeded changes of
// the previous round's tasks, the shape a zero-second task's group commits have under load.
// Prints CPU (user + system, so the kernel's writes and fdatasync count) and bytes written per
// task; under `valgrind --tool=callgrind` its instruction count per task is stable to 0.1%.
#include "tasks/event_bus.hpp"
#include "tasks/sqlite_journal.hpp"
#include "tasks/task_json.hpp"

#include <boost/program_options.hpp>

#include <sys/resource.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>

namespace {
namespace po = boost::program_options;
using namespace quiesce::tasks;

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](timeval t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return s(u.ru_utime) + s(u.ru_stime);
}

long long bytes_written() {
  std::ifstream io("/proc/self/io");
  std::string key;
  long long v = 0;
  while (io >> key >> v)
    if (key == "wchar:") return v;
  return 0;
}

// Hands the journal one change at a time, numbered as the bus numbers them.
struct producer {
  sqlite_journal& journal;
  std::uint64_t seq = 0;

  void append(const task_record& t, bool admission) {
    auto text = open_event_text(t);
    close_with_seq(text, ++seq);
    journal_entry e{t, std::make_shared<const stream_event>(stream_event{seq, t.id, text}), {}};
    if (admission) e.on_stored = [](bool) {};
    journal.append(std::move(e));
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::size_t tasks = 0, batch = 0, warmup = 0;
  po::options_description opts("quiesce-journal-bench");
  opts.add_options()("help", "this text")("tasks", po::value(&tasks)->default_value(20000),
                                          "tasks measured")(
      "batch", po::value(&batch)->default_value(12), "new tasks per group commit")(
      "warmup", po::value(&warmup)->default_value(12000),
      "tasks stored first (beyond the retention, so pruning runs as it does in a long run)");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, opts), vm);
  po::notify(vm);
  if (vm.count("help") || batch == 0) {
    std::cout << opts;
    return 0;
  }
  char dir_template[] = "/tmp/quiesce-journal-bench.XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (!dir) return 1;

  std::mutex m;
  std::condition_variable cv;
  bool finished = false;
  {
    sqlite_journal journal({dir, 10000, 1000, std::chrono::seconds(30), "bench"});
    journal.load();
    producer p{journal};
    std::vector<task_record> previous;
    std::size_t rounds = (warmup + tasks) / batch, round = 0, measured_from = warmup / batch;
    double cpu0 = 0;
    long long bytes0 = 0;
    std::chrono::steady_clock::time_point t0;
    // One round's changes, appended all at once.
    auto next_round = [&] {
      for (auto& t : previous) {
        t.move_to(task_status::running);
        p.append(t, false);
        t.result = boost::json::object{{"slept_seconds", 0}};
        t.move_to(task_status::succeeded);
        p.append(t, false);
      }
      previous.clear();
      for (std::size_t i = 0; i < batch; ++i) {
        auto t = queued_task("sleep", boost::json::object{{"seconds", 0}});
        p.append(t, true);
        previous.push_back(std::move(t));
      }
    };
    // Called on the writer thread after each commit, before it looks for more: the next round
    // appended here is exactly the next commit, so every commit has the same shape.
    journal.start([&](const std::vector<event_ptr>&, std::uint64_t last) {
      if (last != p.seq) return;  // the round was split: not with this driver
      if (++round == measured_from) {
        cpu0 = cpu_seconds();
        bytes0 = bytes_written();
        t0 = std::chrono::steady_clock::now();
      }
      if (round < rounds) return next_round();
      std::lock_guard lock(m);
      finished = true;
      cv.notify_one();
    });
    next_round();
    {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return finished; });
    }
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu = cpu_seconds() - cpu0;
    auto done = static_cast<double>((rounds - measured_from) * batch);
    std::printf(
        "batch %zu: %.0f tasks, %.1f us CPU per task, %.1f us wall per task, %.0f bytes "
        "written per task\n",
        batch, done, cpu / done * 1e6, wall / done * 1e6,
        static_cast<double>(bytes_written() - bytes0) / done);
    journal.stop();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
