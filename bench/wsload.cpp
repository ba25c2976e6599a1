// quiesce-wsload: the WebSocket side of the benchmarks (Python clients are too slow to measure
// the server). Every mode prints one JSON line of results.
//
//   hold    --connections N            open N streams, report the open rate, hold them until the
//                                      server closes them all (or stdin ends), report close codes
//   fanout  --connections N --probes K one task at a time: latency from its POST to its `queued`
//                                      event at every subscriber (p50/p99/max)
//   rate    --connections N --seconds D --posters C --rate R
//                                      POST zero-second tasks at R/s (0: flat out): frames/s
//                                      delivered in total, and any subscriber closed (1013)
//   refuse  --pid P [--pause-us U]     SIGTERM P, then time until the port refuses connects
//                                      (one attempt every U microseconds)
//
// Common: --port P (public port, 127.0.0.1), --threads T (client threads, default 1). Several
// replicas: --subscribe-port and --post-port (each repeatable; default --port) spread the
// subscribers and the posters over them, round robin.
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

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

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
  std::vector<unsigned short> subscribe_ports;  // default: {port}
  std::vector<unsigned short> post_ports;       // default: {port}
  unsigned short subscribe_port(int i) const {
    return subscribe_ports[static_cast<std::size_t>(i) % subscribe_ports.size()];
  }
  unsigned short post_port(int i) const {
    return post_ports[static_cast<std::size_t>(i) % post_ports.size()];
  }
};

double micros(clock_type::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

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
  clock_type::time_point last_close{};
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

void print(const boost::json::object& o) { std::cout << boost::json::serialize(o) << std::endl; }

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(std::lround(q * static_cast<double>(v.size() - 1)));
  return v[std::min(i, v.size() - 1)];
}

// hold: the open rate, then every close the server sends (a drain's 1012s).
int run_hold(const options& o) {
  load run(o.threads);
  auto& ctx = run.ctx;
  auto& home = run.home;
  auto& t = run.t;
  auto start = clock_type::now();
  asio::co_spawn(
      home,
      [&]() -> asio::awaitable<void> {
        co_await open_all(ctx, o, t, nullptr);
        double secs = std::chrono::duration<double>(clock_type::now() - start).count();
        print({{"mode", "hold"},
               {"opened", t.opened.load()},
               {"failed", t.failed.load()},
               {"seconds", secs},
               {"per_second", static_cast<double>(t.opened) / secs}});
        // Until every stream is closed by the server, or stdin ends (the driver is done).
        asio::posix::stream_descriptor in(home, ::dup(STDIN_FILENO));
        char c = 0;
        in.async_read_some(asio::buffer(&c, 1), [&](auto, auto) { ctx.stop(); });
        co_await until(t, [&] { return t.closed >= t.opened; });
        std::lock_guard lock(t.mutex);
        auto wall = std::chrono::system_clock::now() -
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        clock_type::now() - t.last_close);
        print({{"mode", "hold"},
               {"closed", t.closed.load()},
               {"codes", t.codes()},
               {"last_close_unix_ms",
                std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch())
                    .count()}});
        ctx.stop();
      },
      asio::detached);
  ctx.run();
  return 0;
}

// fanout: K probes, one at a time, each waited for at every subscriber.
int run_fanout(const options& o) {
  load run(o.threads);
  auto& ctx = run.ctx;
  auto& home = run.home;
  auto& t = run.t;
  probes p(o.probes);
  int exit_code = 0;
  asio::co_spawn(
      home,
      [&]() -> asio::awaitable<void> {
        co_await open_all(ctx, o, t, &p);
        poster client(home);
        bool connected = co_await client.connect(o.post_port(0));
        if (!connected) throw std::runtime_error("cannot connect to post");
        asio::steady_timer wait(home);
        for (int k = 0; k < o.probes; ++k) {
          p.sent_ns[static_cast<std::size_t>(k)] = clock_type::now().time_since_epoch().count();
          if (!co_await client.post()) throw std::runtime_error("POST failed");
          // Every open subscriber has it (one that was closed will not).
          asio::steady_timer limit(home, 10s);  // a lost event shows as missing samples
          co_await (until(t, [&] { return p.received >= (k + 1) * (t.opened - t.closed); }) ||
                    limit.async_wait(asio::as_tuple(asio::use_awaitable)));
          wait.expires_after(50ms);  // let the rest of the task's frames drain before the next
          co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        std::lock_guard lock(t.mutex);
        auto& v = t.latencies_us;
        print({{"mode", "fanout"},
               {"subscribers", t.opened.load()},
               {"probes", o.probes},
               {"samples", v.size()},
               {"expected", static_cast<long>(o.probes) * t.opened},
               {"p50_ms", percentile(v, 0.5) / 1000},
               {"p99_ms", percentile(v, 0.99) / 1000},
               {"max_ms", v.empty() ? 0 : *std::max_element(v.begin(), v.end()) / 1000},
               {"closed_early", t.closed.load()}});
        ctx.stop();
      },
      [&](std::exception_ptr e) {
        if (e) {
          exit_code = 1;
          ctx.stop();
        }
      });
  ctx.run();
  return exit_code;
}

// rate: posters flat out for D seconds; frames delivered per second to all subscribers.
int run_rate(const options& o) {
  load run(o.threads);
  auto& ctx = run.ctx;
  auto& home = run.home;
  auto& t = run.t;
  std::atomic<long> posted{0};
  std::atomic<bool> running{true};
  asio::co_spawn(
      home,
      [&]() -> asio::awaitable<void> {
        co_await open_all(ctx, o, t, nullptr);
        for (int i = 0; i < o.posters; ++i) {
          asio::co_spawn(
              home,
              [&, i]() -> asio::awaitable<void> {
                poster client(home);
                bool connected = co_await client.connect(o.post_port(i));
                if (!connected) co_return;
                // Paced: each poster takes every posters/rate seconds (0: flat out).
                auto step = std::chrono::duration_cast<clock_type::duration>(
                    std::chrono::duration<double>(o.rate > 0 ? o.posters / o.rate : 0));
                asio::steady_timer pace(home, clock_type::now());
                while (running && co_await client.post()) {
                  ++posted;
                  pace.expires_at(pace.expiry() + step);
                  co_await pace.async_wait(asio::as_tuple(asio::use_awaitable));
                }
              },
              asio::detached);
        }
        asio::steady_timer wait(home);
        wait.expires_after(std::chrono::duration_cast<clock_type::duration>(
            std::chrono::duration<double>(o.seconds / 5)));  // warm-up
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
        long frames0 = t.frames, posted0 = posted;
        auto t0 = clock_type::now();
        wait.expires_after(std::chrono::duration_cast<clock_type::duration>(
            std::chrono::duration<double>(o.seconds)));
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
        double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
        long frames = t.frames - frames0, tasks = posted - posted0;
        running = false;
        std::lock_guard lock(t.mutex);
        print({{"mode", "rate"},
               {"subscribers", t.opened.load()},
               {"seconds", secs},
               {"tasks_per_second", static_cast<double>(tasks) / secs},
               {"frames_per_second", static_cast<double>(frames) / secs},
               {"closed_during_run", t.closed.load()},
               {"close_codes", t.codes()}});
        ctx.stop();
      },
      asio::detached);
  ctx.run();
  return 0;
}

// refuse: SIGTERM the server, then connect until it refuses; blocking sockets, tight loop.
int run_refuse(const options& o) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(o.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto start = clock_type::now();
  if (::kill(o.pid, SIGTERM) != 0) return 1;
  long attempts = 0;
  for (;;) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::close(fd);
    ++attempts;
    if (rc != 0 || clock_type::now() - start > 10s) break;
    // A pause between attempts, so that on a small machine the probe does not starve the very
    // server it times (it adds at most this much to the result).
    if (o.pause_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(o.pause_us));
  }
  print({{"mode", "refuse"},
         {"ms", micros(clock_type::now() - start) / 1000},
         {"attempts", attempts}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  options o;
  po::options_description d("quiesce-wsload MODE [options]; MODE: hold, fanout, rate, refuse");
  // clang-format off
  d.add_options()
    ("help", "print this help")
    ("mode", po::value(&o.mode), "hold, fanout, rate or refuse")
    ("port", po::value(&o.port)->default_value(o.port), "the server's public port on 127.0.0.1")
    ("connections", po::value(&o.connections)->default_value(o.connections), "WebSocket clients")
    ("probes", po::value(&o.probes)->default_value(o.probes), "fanout: tasks timed one at a time")
    ("seconds", po::value(&o.seconds)->default_value(o.seconds), "rate: measured seconds")
    ("posters", po::value(&o.posters)->default_value(o.posters), "rate: keep-alive POST loops")
    ("rate", po::value(&o.rate)->default_value(o.rate), "rate: tasks per second in total (0: flat out)")
    ("threads", po::value(&o.threads)->default_value(o.threads), "client threads")
    ("subscribe-port", po::value(&o.subscribe_ports)->composing(), "a replica's port for subscribers (repeatable)")
    ("post-port", po::value(&o.post_ports)->composing(), "a replica's port for POSTs (repeatable)")
    ("pid", po::value(&o.pid), "refuse: the server's process id")
    ("pause-us", po::value(&o.pause_us)->default_value(o.pause_us), "refuse: microseconds between connect attempts");
  // clang-format on
  po::positional_options_description pos;
  pos.add("mode", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(d).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << e.what() << '\n';
    return 64;
  }
  if (vm.count("help") || o.mode.empty()) {
    std::cout << d;
    return vm.count("help") ? 0 : 64;
  }
  if (o.subscribe_ports.empty()) o.subscribe_ports.push_back(o.port);
  if (o.post_ports.empty()) o.post_ports.push_back(o.port);
  std::signal(SIGPIPE, SIG_IGN);
  if (o.mode == "hold") return run_hold(o);
  if (o.mode == "fanout") return run_fanout(o);
  if (o.mode == "rate") return run_rate(o);
  if (o.mode == "refuse") return run_refuse(o);
  std::cerr << "unknown mode " << o.mode << '\n';
  return 64;
}
