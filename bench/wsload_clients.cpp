#include "wsload_clients.hpp"

#include <fstream>
#include <sstream>

#include <time.h>

namespace wsload {

asio::awaitable<void> subscriber(asio::io_context& io, const options& o, int index, tally& t,
                                 probes* p) {
  websocket::stream<beast::tcp_stream> ws(io);
  auto [cec] = co_await beast::get_lowest_layer(ws).async_connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), o.subscribe_port(index)),
      asio::as_tuple(asio::use_awaitable));
  beast::flat_buffer buffer;
  boost::system::error_code ec;
  if (!cec) {
    beast::get_lowest_layer(ws).expires_never();
    std::tie(ec) = co_await ws.async_handshake("127.0.0.1", "/ws/load" + std::to_string(index),
                                               asio::as_tuple(asio::use_awaitable));
  }
  if (cec || ec) {
    ++t.failed;
    t.wake();
    co_return;
  }
  std::size_t n = 0;
  std::tie(ec, n) = co_await ws.async_read(buffer, asio::as_tuple(asio::use_awaitable));  // hello
  buffer.consume(buffer.size());
  ++t.opened;
  t.wake();
  long queued_seen = 0;
  for (;;) {
    std::tie(ec, n) = co_await ws.async_read(buffer, asio::as_tuple(asio::use_awaitable));
    if (ec) break;
    t.frames.fetch_add(1, std::memory_order_relaxed);
    if (p) {
      auto now = clock_type::now();
      std::string_view text(static_cast<const char*>(buffer.data().data()), buffer.size());
      if (text.find("\"status\":\"queued\"") != std::string_view::npos &&
          queued_seen < static_cast<long>(p->sent_ns.size())) {
        auto sent = clock_type::time_point(
            clock_type::duration(p->sent_ns[static_cast<std::size_t>(queued_seen)].load()));
        ++queued_seen;
        std::lock_guard lock(t.mutex);
        t.latencies_us.push_back(micros(now - sent));
        ++p->received;
        t.wake();
      }
    }
    buffer.consume(buffer.size());
  }
  std::lock_guard lock(t.mutex);
  if (t.closed == 0) {
    t.first_close = clock_type::now();
    t.cpu_at_first_close = own_cpu_seconds();
  }
  ++t.close_codes[ec == websocket::error::closed ? static_cast<int>(ws.reason().code) : -1];
  t.last_close = clock_type::now();
  ++t.closed;
  t.wake();
}

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
