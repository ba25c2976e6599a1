// Every knob (docs/configuration.md): a flag and a QUIESCE_* environment variable; flags win.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace quiesce::app {

struct config {
  std::string bind = "0.0.0.0";
  // Ports are read as unsigned and checked (0 to 65535): Boost's lexical_cast to a 16-bit type
  // overflows an int on long digit strings (undefined behaviour, found by fuzz.config).
  unsigned port = 8000;
  unsigned admin_port = 9000;
  unsigned threads = 0;      // 0: the core count
  unsigned cpu_threads = 0;  // 0: the core count
  unsigned workers = 8;
  double task_seconds = 20;
  double max_task_seconds = 20;
  std::size_t queue_capacity = 1000;
  double drain_delay = 0;
  double close_spread = 0.5;
  double close_timeout = 2;
  double shutdown_timeout = 25;
  std::string log_level = "info";
  std::size_t body_limit = 64 * 1024;
  std::size_t header_limit = 8 * 1024;
  double idle_timeout = 60;
  double header_timeout = 10;
  std::size_t ws_message_limit = 64 * 1024;
  std::size_t ws_send_queue = 16384;
  std::size_t ws_send_queue_bytes = 1024 * 1024;
  std::size_t ws_send_buffer = 256 * 1024;
  double ws_ping_interval = 15;
  std::size_t ws_batch_us = 500;
  std::size_t event_retention = 10000;
  std::size_t task_retention = 10000;
  std::size_t max_connections = 10000;  // public listener, WebSocket streams included
  std::size_t max_websockets = 8000;
  std::string store = "sqlite";   // "memory": tasks lost with the process; "postgres": shared
  std::string data_dir = "data";  // must exist: a missing volume is an error, not a new database
  double lease_seconds = 30;
  // --store postgres: a libpq URI or key=value string; empty: libpq's PG* variables alone.
  std::string database_url;
  std::size_t database_pool = 4;
  double database_timeout = 5;
  std::string kinds;  // --kinds: the operator's command kinds (a JSON file); empty: none
  std::size_t command_tail_bytes = 4096;         // of a command's output, kept in its record
  std::size_t command_log_bytes = 64 * 1024;     // of each of its stdout and stderr, logged
  std::size_t command_line_bytes = 1024 * 1024;  // the longest descriptor-3 line
  double command_linger = 1;                     // seconds its pipes are read after it exited
};

// Seconds with decimals, as the knobs are written.
std::chrono::milliseconds ms_from_seconds(double seconds);

struct help_text {
  std::string text;
};
// Reads argv, then the environment (QUIESCE_PORT for --port, ...). Returns the --help text
// when asked; throws std::invalid_argument naming the knob for a bad value.
std::variant<config, help_text> parse_config(int argc, const char* const argv[]);

// The start-up check of the drain's timings (README, "The drain"; docs/operations.md): one sentence
// per timing that does not fit. `kill_grace` is the longest of the command kinds' (docs/kinds.md):
// past the deadline a command still gets it, and its pipes --command-linger, before it is gone.
std::vector<std::string> timing_warnings(const config& c,
                                         std::chrono::milliseconds kill_grace = {});

}  // namespace quiesce::app
