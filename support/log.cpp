#include "support/log.hpp"

#include "support/json_text.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>

namespace quiesce::log {
namespace {
std::atomic<level> min_level{level::info};
std::mutex out_mutex;

std::string_view name(level l) {
  switch (l) {
    case level::debug:
      return "debug";
    case level::info:
      return "info";
    case level::warn:
      return "warn";
    case level::error:
      return "error";
  }
  return "info";
}
}  // namespace

level parse_level(std::string_view text) {
  for (auto l : {level::debug, level::info, level::warn, level::error})
    if (name(l) == text) return l;
  throw std::invalid_argument("log level must be one of debug, info, warn, error");
}

void set_level(level min) { min_level.store(min); }
bool enabled(level l) { return l >= min_level.load(std::memory_order_relaxed); }

std::string describe(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown error";
  }
}

void append_time(std::string& out, std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto day = floor<days>(t);  // floors, so that the time of day is never negative
  year_month_day date{day};
  hh_mm_ss time{floor<milliseconds>(t - day)};
  // By hand, not snprintf nor gmtime_r (which takes the time zone lock): every event and task
  // body carries times, and printf's format parsing was most of a task's time formatting.
  char text[] = "0000-00-00T00:00:00.000Z";
  auto put = [&text](std::size_t at, int width, long v) {
    for (int i = width - 1; i >= 0; --i, v /= 10)
      text[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + v % 10);
  };
  put(0, 4, static_cast<int>(date.year()));
  put(5, 2, static_cast<unsigned>(date.month()));
  put(8, 2, static_cast<unsigned>(date.day()));
  put(11, 2, time.hours().count());
  put(14, 2, time.minutes().count());
  put(17, 2, static_cast<long>(time.seconds().count()));
  put(20, 3, static_cast<long>(time.subseconds().count()));
  out.append(text, sizeof text - 1);
}

std::string format_time(std::chrono::system_clock::time_point t) {
  std::string out;
  append_time(out, t);
  return out;
}

namespace {
// Reads `n` digits of `s` at `at` into `v`; false if they are not all digits.
bool digits(std::string_view s, std::size_t at, std::size_t n, int& v) {
  if (at + n > s.size()) return false;
  v = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  return true;
}
}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_time(std::string_view text) {
  std::string_view s = text;
  using namespace std::chrono;
  int y, mo, d, h, mi, sec;
  if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, h) ||
      s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec))
    return std::nullopt;
  year_month_day date{year(y), month(static_cast<unsigned>(mo)), day(static_cast<unsigned>(d))};
  if (!date.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::size_t at = 19;
  nanoseconds frac{};
  if (at < s.size() && s[at] == '.') {
    long long scale = 100'000'000;
    for (++at; at < s.size() && s[at] >= '0' && s[at] <= '9'; ++at, scale /= 10)
      frac += nanoseconds((s[at] - '0') * scale);
  }
  minutes offset{};
  if (at < s.size() && (s[at] == 'Z' || s[at] == 'z')) {
    ++at;
  } else if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    int oh, om;
    if (!digits(s, at + 1, 2, oh) || at + 3 >= s.size() || s[at + 3] != ':' ||
        !digits(s, at + 4, 2, om) || oh > 23 || om > 59)
      return std::nullopt;
    offset = (s[at] == '+' ? 1 : -1) * (hours(oh) + minutes(om));
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != s.size()) return std::nullopt;
  auto t = sys_days(date) + hours(h) + minutes(mi) + seconds(sec) + frac - offset;
  return time_point_cast<system_clock::duration>(t);
}

namespace {
void emit(level l, std::string_view msg, boost::json::object fields) {
  boost::json::object line;
  line["ts"] = format_time(std::chrono::system_clock::now());
  line["level"] = name(l);
  line["msg"] = msg;
  for (auto& [k, v] : fields) line[k] = std::move(v);
  std::string text = support::json_text(line);
  text += '\n';
  std::lock_guard lock(out_mutex);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);  // line by line: tests and log shippers read as we go
}
}  // namespace

void write(level l, std::string_view msg, boost::json::object fields) {
  if (enabled(l)) emit(l, msg, std::move(fields));
}

void always(std::string_view msg, boost::json::object fields) {
  emit(level::info, msg, std::move(fields));
}

}  // namespace quiesce::log
