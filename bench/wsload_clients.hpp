// The load client of quiesce-wsload: client threads, subscribers, posters and what they count.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace wsload {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

struct options {
  std::string mode;
  unsigned short port = 8000;
  int connections = 1000;
  int probes = 20;
  double seconds = 5;
  int posters = 4;
  double rate = 0;  // tasks per second in total; 0: as fast as the server takes them
  int threads = 1;
  int pid = 0;
  int pause_us = 50;
  int server_pid = 0;  // fanout, rate: the server's CPU is reported beside the client's
  std::vector<unsigned short> subscribe_ports;  // default: {port}
  std::vector<unsigned short> post_ports;       // default: {port}
  unsigned short subscribe_port(int i) const {
    return subscribe_ports[static_cast<std::size_t>(i) % subscribe_ports.size()];
  }
  unsigned short post_port(int i) const {
    return post_ports[static_cast<std::size_t>(i) % post_ports.size()];
  }
};

inline double micros(clock_type::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// CPU seconds used so far by this process (all its threads), and by process `pid` (user +
// system, from /proc; 0 when it cannot be read). Divided by the wall time of a window, each says
// how busy that side was: with one client thread, a client near 1.0 is what the figure measures.
double own_cpu_seconds();
double cpu_seconds_of(int pid);

// CPU per wall second of the measured windows, the client's and (if known) the server's.
struct busy_meter {
  explicit busy_meter(int pid) : server_pid(pid) {}
  int server_pid = 0;
  double wall = 0, client = 0, server = 0;
  clock_type::time_point w0;
  double c0 = 0, s0 = 0;
  void start() {
    w0 = clock_type::now();
    c0 = own_cpu_seconds();
    s0 = server_pid ? cpu_seconds_of(server_pid) : 0;
  }
  void stop() {
    wall += std::chrono::duration<double>(clock_type::now() - w0).count();
    client += own_cpu_seconds() - c0;
    if (server_pid) server += cpu_seconds_of(server_pid) - s0;
  }
  void add_to(boost::json::object& o) const {
    if (wall <= 0) return;
    o["client_cpu_per_second"] = client / wall;
    if (server_pid) o["server_cpu_per_second"] = server / wall;
  }
};

// A pool of io_contexts, one thread each; connections are spread over them.
class contexts {
 public:
  explicit contexts(int n) : ios_(static_cast<std::size_t>(n)) {
    // Each context runs until stop(): one that found no work yet would return at once, and the
    // connections given to it later would never run (--threads 2 hung that way).
    for (auto& io : ios_) work_.push_back(asio::make_work_guard(io));
  }
  asio::io_context& next() { return ios_[next_++ % ios_.size()]; }
  void run() {
    std::vector<std::thread> threads;
    for (auto& io : ios_) threads.emplace_back([&io] { io.run(); });
    for (auto& t : threads) t.join();
  }
  void stop() {
    for (auto& io : ios_) io.stop();
  }

 private:
  std::vector<asio::io_context> ios_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::size_t next_ = 0;
};

// What every subscriber reports; updated from several threads.
struct tally {
  explicit tally(asio::io_context& home) : gate(home, clock_type::time_point::max()) {}
  std::atomic<long> opened{0};
  std::atomic<long> failed{0};
  std::atomic<long> closed{0};
  std::atomic<long> frames{0};
  std::mutex mutex;
  std::map<int, long> close_codes;
  std::vector<double> latencies_us;
  clock_type::time_point first_close{}, last_close{};
  double cpu_at_first_close = 0;  // own_cpu_seconds()
  // The driver coroutine waits on this timer; subscribers on other threads wake it by posting.
  asio::steady_timer gate;
  void wake() {
    asio::post(gate.get_executor(), [this] { gate.cancel(); });
  }
  // Close codes as JSON; the caller holds `mutex`.
  boost::json::object codes() const {
    boost::json::object o;
    for (const auto& [code, n] : close_codes) o[std::to_string(code)] = n;
    return o;
  }
};

// One run: the client threads, the driver's home context (kept running) and the tally.
struct load {
  contexts ctx;
  asio::io_context& home;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  tally t;
  explicit load(int threads)
      : ctx(threads), home(ctx.next()), work(asio::make_work_guard(home)), t(home) {}
};

// Waits on the gate until `done()` holds (checked on the gate's thread, so no lost wake-up).
template <class Pred>
asio::awaitable<void> until(tally& t, Pred done) {
  while (!done()) co_await t.gate.async_wait(asio::as_tuple(asio::use_awaitable));
}

// Probe k was POSTed at probe_sent[k]; a subscriber's k-th `queued` frame is probe k's.
struct probes {
  std::vector<std::atomic<long>> sent_ns;
  std::atomic<long> received{0};
  explicit probes(int n) : sent_ns(static_cast<std::size_t>(n)) {}
};

// POSTs a zero-second task on a keep-alive connection; false on any failure.
struct poster {
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  explicit poster(asio::io_context& io) : stream(io) {}
  asio::awaitable<bool> connect(unsigned short port) {
    auto [ec] =
        co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                      asio::as_tuple(asio::use_awaitable));
    co_return !ec;
  }
  asio::awaitable<bool> post() {
    http::request<http::string_body> req{http::verb::post, "/v1/tasks", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    req.body() = R"({"kind":"sleep","seconds":0})";
    req.prepare_payload();
    auto [wec, wn] = co_await http::async_write(stream, req, asio::as_tuple(asio::use_awaitable));
    if (wec) co_return false;
    http::response<http::string_body> res;
    auto [rec, rn] =
        co_await http::async_read(stream, buffer, res, asio::as_tuple(asio::use_awaitable));
    co_return !rec && res.result() == http::status::accepted;
  }
};

// One subscriber: connects, reads the hello, then counts frames (and probe latencies) until the
// server closes the stream; its close code goes into the tally.
asio::awaitable<void> subscriber(asio::io_context& io, const options& o, int index, tally& t,
                                 probes* p);
// Opens o.connections subscribers, at most 256 handshakes in flight at a time.
asio::awaitable<void> open_all(contexts& ctx, const options& o, tally& t, probes* p);
void print(const boost::json::object& o);  // one JSON line of results
double percentile(std::vector<double> v, double q);

}  // namespace wsload
