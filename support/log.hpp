// One JSON object per line on stdout, so `kubectl logs` and log shippers read them as they are.
// Lives in lifecycle/ because it is the lowest layer: every library links it.
#pragma once

#include <boost/json/object.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace quiesce::log {

enum class level { debug, info, warn, error };

// Throws std::invalid_argument naming the accepted values.
level parse_level(std::string_view text);
void set_level(level min);
bool enabled(level l);

void write(level l, std::string_view msg, boost::json::object fields = {});
// An info line written whatever --log-level says: `listening` and the drain's phase lines,
// which tests, tooling and operators rely on.
void always(std::string_view msg, boost::json::object fields = {});
inline void debug(std::string_view msg, boost::json::object f = {}) {
  write(level::debug, msg, std::move(f));
}
inline void info(std::string_view msg, boost::json::object f = {}) {
  write(level::info, msg, std::move(f));
}
inline void warn(std::string_view msg, boost::json::object f = {}) {
  write(level::warn, msg, std::move(f));
}
inline void error(std::string_view msg, boost::json::object f = {}) {
  write(level::error, msg, std::move(f));
}

// RFC 3339 UTC with milliseconds, as used in logs and task records.
std::string format_time(std::chrono::system_clock::time_point t);
void append_time(std::string& out, std::chrono::system_clock::time_point t);  // the same, appended
// RFC 3339 as clients write it ("2026-12-08T10:00:00Z", "...T10:00:00.5+01:00"); none if not.
std::optional<std::chrono::system_clock::time_point> parse_time(std::string_view text);

// What an escaped exception says (its what(), or "unknown error"), for a log line or a record.
std::string describe(std::exception_ptr e);

}  // namespace quiesce::log
