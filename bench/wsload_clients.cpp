#include "wsload_clients.hpp"

#include <fstream>
#include <sstream>

#include <time.h>

namespace wsload {

// Opens o.connections subscribers, at most `window` handshakes in flight at a time.
asio::awaitable<void> open_all(contexts& ctx, const options& o, tally& t, probes* p) {
  const long window = 256;
  for (int i = 0; i < o.connections; ++i) {
    co_await until(t, [&] { return i - (t.opened + t.failed) < window; });
    auto& io = ctx.next();
    asio::co_spawn(io, subscriber(io, o, i, t, p), asio::detached);
  }
  co_await until(t, [&] { return t.opened + t.failed >= o.connections; });
}

double own_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double cpu_seconds_of(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)  // utime and stime are fields 14 and 15
    if (i >= 14) ticks += std::stod(field);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

void print(const boost::json::object& o) { std::cout << boost::json::serialize(o) << std::endl; }

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(std::lround(q * static_cast<double>(v.size() - 1)));
  return v[std::min(i, v.size() - 1)];
}

}  // namespace wsload
