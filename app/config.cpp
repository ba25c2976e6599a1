#include "app/config.hpp"

#include "support/log.hpp"

#include <boost/program_options.hpp>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace quiesce::app {
namespace po = boost::program_options;

std::chrono::milliseconds ms_from_seconds(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000)));
}

namespace {

po::options_description describe(config& c) {
  po::options_description d("quiesce options (each also QUIESCE_<NAME>, e.g. QUIESCE_PORT)");
  // clang-format off
  d.add_options()
    ("help", "print this help")
    ("bind", po::value(&c.bind)->default_value(c.bind), "address both listeners bind")
    ("port", po::value(&c.port)->default_value(c.port), "public port (0: pick a free one)")
    ("admin-port", po::value(&c.admin_port)->default_value(c.admin_port), "admin port (0: pick a free one)")
    ("threads", po::value(&c.threads)->default_value(c.threads), "network threads (0: the core count)")
    ("cpu-threads", po::value(&c.cpu_threads)->default_value(c.cpu_threads), "threads for CPU-bound tasks (0: the core count)")
    ("workers", po::value(&c.workers)->default_value(c.workers), "tasks run at once")
    ("task-seconds", po::value(&c.task_seconds)->default_value(c.task_seconds), "duration of the default sleep task")
    ("max-task-seconds", po::value(&c.max_task_seconds)->default_value(c.max_task_seconds), "longest sleep task a client may ask for")
    ("queue-capacity", po::value(&c.queue_capacity)->default_value(c.queue_capacity), "queued tasks before 429")
    ("drain-delay", po::value(&c.drain_delay)->default_value(c.drain_delay), "seconds the public listener stays open after the signal")
    ("close-spread", po::value(&c.close_spread)->default_value(c.close_spread), "seconds over which streams are closed 1012")
    ("close-timeout", po::value(&c.close_timeout)->default_value(c.close_timeout), "seconds to wait for close handshakes")
    ("shutdown-timeout", po::value(&c.shutdown_timeout)->default_value(c.shutdown_timeout), "seconds from the signal to a forced stop")
    ("log-level", po::value(&c.log_level)->default_value(c.log_level), "debug, info, warn or error")
    ("body-limit", po::value(&c.body_limit)->default_value(c.body_limit), "largest request body, bytes (413 past it)")
    ("header-limit", po::value(&c.header_limit)->default_value(c.header_limit), "largest request header, bytes (431 past it)")
    ("idle-timeout", po::value(&c.idle_timeout)->default_value(c.idle_timeout), "seconds a keep-alive connection may stay idle")
    ("header-timeout", po::value(&c.header_timeout)->default_value(c.header_timeout), "seconds to receive a whole request once it started")
    ("ws-message-limit", po::value(&c.ws_message_limit)->default_value(c.ws_message_limit), "largest WebSocket message a client may send, bytes")
    ("ws-send-queue", po::value(&c.ws_send_queue)->default_value(c.ws_send_queue), "frames waiting for one client before it is closed 1013")
    ("ws-send-queue-bytes", po::value(&c.ws_send_queue_bytes)->default_value(c.ws_send_queue_bytes), "bytes of frames waiting for one client before it is closed 1013")
    ("ws-send-buffer", po::value(&c.ws_send_buffer)->default_value(c.ws_send_buffer), "kernel send buffer per WebSocket client, bytes")
    ("ws-ping-interval", po::value(&c.ws_ping_interval)->default_value(c.ws_ping_interval), "seconds between pings to an idle client")
    ("ws-batch-us", po::value(&c.ws_batch_us)->default_value(c.ws_batch_us), "microseconds a network thread gathers events before it sends them, each client's in one write; 0: at once")
    ("event-retention", po::value(&c.event_retention)->default_value(c.event_retention), "events kept for ?since= replay")
    ("task-retention", po::value(&c.task_retention)->default_value(c.task_retention), "finished tasks kept for GET and Idempotency-Key, oldest forgotten first")
    ("max-connections", po::value(&c.max_connections)->default_value(c.max_connections), "open connections on the public port (past it: reset at once)")
    ("max-websockets", po::value(&c.max_websockets)->default_value(c.max_websockets), "open WebSocket streams (past it: 503 to the upgrade)")
    ("store", po::value(&c.store)->default_value(c.store), "sqlite (tasks survive restarts and crashes), memory, or postgres (replicas share one queue)")
    ("data-dir", po::value(&c.data_dir)->default_value(c.data_dir), "existing directory of the sqlite store (quiesce.db)")
    ("lease-seconds", po::value(&c.lease_seconds)->default_value(c.lease_seconds), "how long a running task's lease lasts unrenewed (sqlite, postgres)")
    ("database-url", po::value(&c.database_url)->default_value(c.database_url), "PostgreSQL for --store postgres: a libpq URI or key=value string (PG* variables apply)")
    ("database-pool", po::value(&c.database_pool)->default_value(c.database_pool), "PostgreSQL connections per replica, besides the one that listens")
    ("database-timeout", po::value(&c.database_timeout)->default_value(c.database_timeout), "seconds a PostgreSQL statement or connect may take before the store counts as unavailable (503)")
    ("kinds", po::value(&c.kinds)->default_value(c.kinds), "JSON file of command kinds: programs run once per attempt (docs/kinds.md)")
    ("command-tail-bytes", po::value(&c.command_tail_bytes)->default_value(c.command_tail_bytes), "bytes of a command's stdout and stderr kept in its record (output)")
    ("command-log-bytes", po::value(&c.command_log_bytes)->default_value(c.command_log_bytes), "bytes of each of a command's stdout and stderr logged per attempt")
    ("command-line-bytes", po::value(&c.command_line_bytes)->default_value(c.command_line_bytes), "longest line a command may write on descriptor 3 (longer: ignored)")
    ("command-linger", po::value(&c.command_linger)->default_value(c.command_linger), "seconds a command's pipes are still read after it exited (a grandchild may hold them)");
  // clang-format on
  return d;
}

// Boost.Program_options expands %value%, %canonical_option% and the like in its error messages
// until none is left: such text in an argument made the parser loop for ever (found by
// fuzz.config). Refused before parsing.
void refuse_placeholders(std::string_view text, const std::string& where) {
  for (auto open = text.find('%'); open != std::string_view::npos;) {
    auto close = text.find('%', open + 1);
    if (close == std::string_view::npos) return;
    auto name = text.substr(open + 1, close - open - 1);
    if (!name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char ch) {
          return std::islower(ch) || ch == '_';
        }))
      throw std::invalid_argument(where + ": '%" + std::string(name) +
                                  "%' is not allowed in an option or a value");
    open = close;
  }
}

void refuse_placeholders(int argc, const char* const argv[]) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    bool option = arg.rfind('-', 0) == 0;
    refuse_placeholders(arg, option || i == 1 ? "option " + std::string(arg)
                                              : "value of " + std::string(argv[i - 1]));
  }
  for (char** env = environ; *env; ++env) {
    std::string_view var = *env;
    auto eq = var.find('=');
    if (var.rfind("QUIESCE_", 0) == 0 && eq != std::string_view::npos)
      refuse_placeholders(var.substr(eq + 1), std::string(var.substr(0, eq)));
  }
}

void check(bool ok, const char* knob, const char* why) {
  if (!ok) throw std::invalid_argument(std::string("--") + knob + " " + why);
}

}  // namespace

std::variant<config, help_text> parse_config(int argc, const char* const argv[]) {
  config c;
  auto desc = describe(c);
  po::variables_map vm;
  refuse_placeholders(argc, argv);
  try {
    // No abbreviations (`--work` for --workers): one that is unique today is ambiguous once a
    // knob is added, and a typo should be an error, not a guess.
    po::store(
        po::command_line_parser(argc, argv)
            .options(desc)
            .style(po::command_line_style::default_style & ~po::command_line_style::allow_guessing)
            .run(),
        vm);
    // Stored second, so a flag given on the command line wins over its variable.
    po::store(po::parse_environment(
                  desc,
                  [&desc](const std::string& var) -> std::string {
                    if (var.rfind("QUIESCE_", 0) != 0) return "";
                    std::string name = var.substr(8);
                    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) {
                      return ch == '_' ? '-' : std::tolower(ch);
                    });
                    return desc.find_nothrow(name, false) && name != "help" ? name : "";
                  }),
              vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw std::invalid_argument(e.what());
  }
  if (vm.count("help")) {
    std::ostringstream out;
    out << "Usage: quiesce [options]\n" << desc;
    return help_text{out.str()};
  }
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (c.threads == 0) c.threads = cores;
  if (c.cpu_threads == 0) c.cpu_threads = cores;
  check(c.port <= 65535, "port", "must be a port number, 0 to 65535");
  check(c.admin_port <= 65535, "admin-port", "must be a port number, 0 to 65535");
  check(c.workers > 0, "workers", "must be at least 1");
  check(c.queue_capacity > 0, "queue-capacity", "must be at least 1");
  check(c.task_seconds >= 0 && c.task_seconds <= c.max_task_seconds, "task-seconds",
        "must be between 0 and --max-task-seconds");
  for (auto [v, knob] : {std::pair{c.drain_delay, "drain-delay"},
                         {c.close_spread, "close-spread"},
                         {c.close_timeout, "close-timeout"},
                         {c.shutdown_timeout, "shutdown-timeout"},
                         {c.idle_timeout, "idle-timeout"},
                         {c.header_timeout, "header-timeout"},
                         {c.ws_ping_interval, "ws-ping-interval"},
                         {c.command_linger, "command-linger"}})
    check(std::isfinite(v) && v >= 0, knob, "must be a number of seconds, 0 or more");
  check(c.ws_ping_interval > 0, "ws-ping-interval", "must be more than 0");
  check(c.ws_send_queue > 0, "ws-send-queue", "must be at least 1");
  check(c.ws_send_queue_bytes > 0, "ws-send-queue-bytes", "must be at least 1");
  check(c.ws_send_buffer >= 4096 && c.ws_send_buffer <= (1u << 30), "ws-send-buffer",
        "must be between 4096 and 1073741824 bytes");
  check(c.ws_batch_us <= 100000, "ws-batch-us", "must be between 0 and 100000 microseconds");
  check(c.event_retention > 0, "event-retention", "must be at least 1");
  check(c.task_retention > 0, "task-retention", "must be at least 1");
  check(c.max_connections > 0, "max-connections", "must be at least 1");
  check(c.max_websockets > 0, "max-websockets", "must be at least 1");
  check(c.store == "sqlite" || c.store == "memory" || c.store == "postgres", "store",
        "must be sqlite, memory or postgres");
  check(c.database_pool > 0, "database-pool", "must be at least 1");
  check(c.command_tail_bytes <= (1u << 20), "command-tail-bytes", "must be at most 1048576");
  check(c.command_line_bytes >= 64 && c.command_line_bytes <= (64u << 20), "command-line-bytes",
        "must be between 64 and 67108864");
  check(std::isfinite(c.database_timeout) && c.database_timeout > 0, "database-timeout",
        "must be a number of seconds, more than 0");
  check(!c.data_dir.empty(), "data-dir", "must name a directory");
  check(std::isfinite(c.lease_seconds) && c.lease_seconds >= 1, "lease-seconds",
        "must be a number of seconds, 1 or more");
  log::parse_level(c.log_level);  // throws with the accepted values
  return c;
}

std::vector<std::string> timing_warnings(const config& c, std::chrono::milliseconds kill_grace) {
  std::vector<std::string> out;
  double needed = c.drain_delay + c.max_task_seconds + c.close_spread + c.close_timeout;
  if (needed > c.shutdown_timeout) {
    std::ostringstream w;
    w << "--shutdown-timeout " << c.shutdown_timeout << " s is shorter than --drain-delay + "
      << "--max-task-seconds + --close-spread + --close-timeout = " << needed
      << " s: a task accepted just before a drain may be interrupted";
    out.push_back(w.str());
  }
  double grace = kill_grace.count() > 0
                     ? std::chrono::duration<double>(kill_grace).count() + c.command_linger
                     : 0;
  if (c.shutdown_timeout + grace >= 30) {
    std::ostringstream w;
    w << "--shutdown-timeout";
    if (grace > 0) w << " + the longest kill_grace_seconds + --command-linger (" << grace << " s)";
    w << " is not below Kubernetes' default 30 s grace period: raise "
         "terminationGracePeriodSeconds to match";
    out.push_back(w.str());
  }
  return out;
}

}  // namespace quiesce::app
