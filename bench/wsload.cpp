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
// fanout and rate report the client's CPU per wall second of what they time (and the server's,
// given --server-pid): with one client thread, a client near 1.0 is what the figure measures.
//
// Common: --port P (public port, 127.0.0.1), --threads T (client threads, default 1). Several
// replicas: --subscribe-port and --post-port (each repeatable; default --port) spread the
// subscribers and the posters over them, round robin.
#include "wsload_clients.hpp"

#include <csignal>

#include <unistd.h>

using namespace wsload;

namespace {

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
        // Read once here, just after the last close, not at every close: a system call per close
        // would add to the very work it times.
        double cpu_at_end = own_cpu_seconds();
        std::lock_guard lock(t.mutex);
        double close_window = std::chrono::duration<double>(t.last_close - t.first_close).count();
        auto wall = std::chrono::system_clock::now() -
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        clock_type::now() - t.last_close);
        print({{"mode", "hold"},
               {"closed", t.closed.load()},
               {"codes", t.codes()},
               {"close_window_ms", close_window * 1000},
               // From the first close to the last: 1.0 is the one client thread always busy.
               {"client_cpu_per_second",
                close_window > 0 ? (cpu_at_end - t.cpu_at_first_close) / close_window : 0},
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
        busy_meter busy(o.server_pid);
        for (int k = 0; k < o.probes; ++k) {
          busy.start();  // from the POST to the last subscriber's `queued`
          p.sent_ns[static_cast<std::size_t>(k)] = clock_type::now().time_since_epoch().count();
          if (!co_await client.post()) throw std::runtime_error("POST failed");
          // Every open subscriber has it (one that was closed will not).
          asio::steady_timer limit(home, 10s);  // a lost event shows as missing samples
          co_await (until(t, [&] { return p.received >= (k + 1) * (t.opened - t.closed); }) ||
                    limit.async_wait(asio::as_tuple(asio::use_awaitable)));
          busy.stop();
          wait.expires_after(50ms);  // let the rest of the task's frames drain before the next
          co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        std::lock_guard lock(t.mutex);
        auto& v = t.latencies_us;
        boost::json::object out{
            {"mode", "fanout"},
            {"subscribers", t.opened.load()},
            {"probes", o.probes},
            {"samples", v.size()},
            {"expected", static_cast<long>(o.probes) * t.opened},
            {"p50_ms", percentile(v, 0.5) / 1000},
            {"p99_ms", percentile(v, 0.99) / 1000},
            {"max_ms", v.empty() ? 0 : *std::max_element(v.begin(), v.end()) / 1000},
            {"closed_early", t.closed.load()}};
        busy.add_to(out);
        print(out);
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
        busy_meter busy(o.server_pid);
        busy.start();
        wait.expires_after(std::chrono::duration_cast<clock_type::duration>(
            std::chrono::duration<double>(o.seconds)));
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
        busy.stop();
        double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
        long frames = t.frames - frames0, tasks = posted - posted0;
        running = false;
        std::lock_guard lock(t.mutex);
        boost::json::object out{{"mode", "rate"},
                                {"subscribers", t.opened.load()},
                                {"seconds", secs},
                                {"tasks_per_second", static_cast<double>(tasks) / secs},
                                {"frames_per_second", static_cast<double>(frames) / secs},
                                {"closed_during_run", t.closed.load()},
                                {"close_codes", t.codes()}};
        busy.add_to(out);
        print(out);
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
    ("server-pid", po::value(&o.server_pid), "fanout, rate: the server's process id, to report its CPU beside the client's")
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
