#include "app/server.hpp"

#include "app/app_state.hpp"
#include "lifecycle/coordinator.hpp"
#include "lifecycle/log.hpp"
#include "net/listener.hpp"
#include "tasks/memory_task_store.hpp"
#include "tasks/pg/connection.hpp"
#include "tasks/pg/shared_events.hpp"
#include "tasks/pg/shared_service.hpp"
#include "tasks/sqlite_journal.hpp"
#include "tasks/task_service.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <sys/resource.h>

#include <cstdlib>
#include <limits>
#include <thread>

namespace quiesce::app {
namespace asio = boost::asio;

namespace {

// Read at start-up, before any thread exists (nothing here calls setenv).
std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  return v && *v ? v : fallback;
}

// Resets a connection past the limit at once; logged at the 1st, 2nd, 4th, 8th... refusal so
// that a flood cannot flood the log too.
void refuse(net::tcp::socket& s, const net::connection_limit& limit) {
  boost::system::error_code ignored;
  s.set_option(asio::socket_base::linger(true, 0), ignored);
  s.close(ignored);
  auto n = limit.refused();
  if ((n & (n - 1)) == 0)
    log::warn("connection refused: limit reached",
              {{"max_connections", limit.max()}, {"refused_total", n}});
}

// Starts the accept loop of one listener in `group`; each connection joins `sessions` and is
// served on a strand of `io`, unless `limit` says too many are open.
void listen(asio::io_context& io, net::tcp::acceptor acceptor, std::string name,
            lifecycle::task_group& group, lifecycle::task_group& sessions,
            std::shared_ptr<const net::session_context> ctx, net::connection_limit& limit) {
  auto strand = acceptor.get_executor();
  auto spawn = [&sessions, ctx, &limit](net::tcp::socket s) {
    auto place = limit.try_acquire();
    if (!place) return refuse(s, limit);
    auto session_strand = s.get_executor();  // accepted onto its own strand
    asio::co_spawn(session_strand, net::serve_http(std::move(s), ctx, std::move(place)),
                   sessions.adapt(session_strand));
  };
  asio::co_spawn(strand, net::accept_loop(std::move(acceptor), io, std::move(name), spawn),
                 group.adapt(strand));
}

// Connections need descriptors: take the hard limit (a container's default soft limit may be
// 1024) and say so when even that is short of --max-connections.
void raise_descriptor_limit(const config& cfg) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
  constexpr std::size_t spare = 64;  // listeners, the log, the event loop's own
  if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur < cfg.max_connections + spare)
    log::warn("descriptor limit below --max-connections",
              {{"nofile", r.rlim_cur}, {"max_connections", cfg.max_connections}});
}

}  // namespace

int run_server(const config& cfg) {
  raise_descriptor_limit(cfg);
  asio::io_context io(static_cast<int>(cfg.threads));
  // The control plane has its own thread: signals, the coordinator, both acceptors and the admin
  // sessions. A SIGTERM then closes the public listener, and probes get answers, even while the
  // network threads are saturated (a fan-out to 10,000 streams had queued 220 ms of work ahead
  // of the signal).
  asio::io_context control(1);
  asio::thread_pool cpu(cfg.cpu_threads);

  // The sqlite store: the journal makes every change durable before it is delivered, the
  // memory store answers reads. Opening it is the first thing that can refuse a start.
  const bool durable = cfg.store == "sqlite";
  std::optional<tasks::sqlite_journal> journal;
  tasks::stored_state stored;
  if (durable) {
    try {
      journal.emplace(tasks::journal_settings{cfg.data_dir, cfg.task_retention, cfg.event_retention,
                                              to_ms(cfg.lease_seconds), tasks::new_task_id()});
      stored = journal->load();
    } catch (const tasks::storage_error& e) {
      log::error("cannot open the task store", {{"file", e.file}, {"error", e.what()}});
      return exit_storage;
    }
  } else if (cfg.store == "postgres") {
    // The database numbers the service's events: the bus starts where the service's stream is.
    if (auto bad = tasks::pg::conninfo_error(cfg.database_url)) {
      log::error("cannot open the task store", {{"database_url", "invalid"}, {"error", *bad}});
      return exit_storage;
    }
    try {
      auto head = tasks::pg::open_database(cfg.database_url, to_ms(cfg.database_timeout),
                                           cfg.event_retention);
      stored.epoch = std::move(head.epoch);
      stored.last_seq = head.last_seq;
      stored.events = std::move(head.events);
    } catch (const std::exception& e) {
      log::error("cannot open the task store", {{"store", "postgres"}, {"error", e.what()}});
      return exit_storage;
    }
  } else {
    stored.epoch = tasks::new_task_id();  // a new epoch: nothing survives this process
  }
  tasks::memory_task_store store(cfg.task_retention);
  std::vector<tasks::task_record> unfinished;
  for (auto& t : stored.tasks) {
    store.insert(t);
    if (!tasks::is_final(t.status)) unfinished.push_back(std::move(t));
  }
  tasks::event_bus bus(stored.epoch, cfg.event_retention, stored.last_seq,
                       std::move(stored.events));
  if (journal) {
    journal->start([&bus](const std::vector<tasks::event_ptr>& events, std::uint64_t settled) {
      bus.deliver(events, settled);
    });
    bus.attach(*journal);
  }
  // On every way out the writer stops (storing what is left) before the bus it delivers to goes.
  struct journal_stopper {
    std::optional<tasks::sqlite_journal>& j;
    ~journal_stopper() {
      if (j) j->stop();
    }
  } stop_journal{journal};
  auto kinds = tasks::builtin_kinds({cfg.task_seconds, cfg.max_task_seconds});
  std::optional<tasks::task_service> local;
  std::optional<tasks::pg::shared_service> shared;
  tasks::service* chosen = nullptr;
  if (cfg.store == "postgres") {
    shared.emplace(
        tasks::pg::shared_settings{cfg.database_url, cfg.database_pool, to_ms(cfg.database_timeout),
                                   cfg.workers, cfg.queue_capacity, cfg.task_retention,
                                   cfg.event_retention, to_ms(cfg.lease_seconds),
                                   env_or("KUBE_POD_NAME", "local")},
        std::move(kinds), bus, cpu);
    shared->open();
    chosen = &*shared;
  } else {
    local.emplace(tasks::service_settings{cfg.workers, cfg.queue_capacity, durable},
                  std::move(kinds), store, bus, cpu);
    if (journal) local->watch_store([&j = *journal] { return j.healthy(); });
    local->recover(unfinished);
    chosen = &*local;
  }
  tasks::service& service = *chosen;
  metrics meter(service.kinds().names());
  service.observe(meter);
  net::stream_settings ss;
  ss.send_queue_limit = cfg.ws_send_queue;
  ss.message_limit = cfg.ws_message_limit;
  ss.send_buffer = cfg.ws_send_buffer;
  ss.ping_interval = to_ms(cfg.ws_ping_interval);
  ss.close_timeout = to_ms(cfg.close_timeout);
  ss.pod = env_or("KUBE_POD_NAME", "Not running inside Kubernetes");
  ss.pod_namespace = env_or("KUBE_POD_NAMESPACE", "Not running inside Kubernetes");
  net::stream_hub hub(ss, bus);

  lifecycle::drain_hooks hooks{
      .stop_admission = [&service] { service.stop_admission(); },
      .work_done = [&service] { return service.wait_idle(); },
      .interrupt_queued = [&service] { return service.interrupt_queued(); },
      .close_streams = [&hub](std::chrono::milliseconds spread) { return hub.close_all(spread); },
      .counts =
          [&service, &hub] {
            auto c = service.counts();
            return boost::json::object{
                {"queued", c.queued}, {"running", c.running}, {"websockets", hub.open()}};
          },
  };
  lifecycle::coordinator coord(control.get_executor(),
                               {to_ms(cfg.drain_delay), to_ms(cfg.close_spread),
                                to_ms(cfg.close_timeout), to_ms(cfg.shutdown_timeout)},
                               std::move(hooks));
  net::connection_limit public_connections(cfg.max_connections);
  // The admin port serves the kubelet's probes and is not exposed outside the pod.
  net::connection_limit admin_connections(std::numeric_limits<std::size_t>::max());
  app_state state{cfg, service, bus, hub, coord.state(), public_connections, meter};

  net::http_limits limits{cfg.header_limit, cfg.body_limit, to_ms(cfg.idle_timeout),
                          to_ms(cfg.header_timeout)};
  auto public_ctx = std::make_shared<const net::session_context>(
      net::session_context{limits, &coord.state(), public_routes(state), &hub});
  auto admin_ctx = std::make_shared<const net::session_context>(
      net::session_context{limits, nullptr, admin_routes(state), nullptr});

  net::tcp::acceptor public_acceptor(io), admin_acceptor(io);
  try {
    // Each listener keeps the address's own family: 0.0.0.0 is IPv4 only, :: is both.
    auto address = asio::ip::make_address(cfg.bind);
    public_acceptor = net::open_acceptor(asio::make_strand(control),
                                         {address, static_cast<std::uint16_t>(cfg.port)});
    admin_acceptor = net::open_acceptor(asio::make_strand(control),
                                        {address, static_cast<std::uint16_t>(cfg.admin_port)});
  } catch (const std::exception& e) {
    log::error("cannot listen", {{"bind", cfg.bind},
                                 {"port", cfg.port},
                                 {"admin_port", cfg.admin_port},
                                 {"error", e.what()}});
    return 1;
  }
  auto port = public_acceptor.local_endpoint().port();
  auto admin_port = admin_acceptor.local_endpoint().port();
  auto& tree = coord.tree();
  listen(io, std::move(public_acceptor), "public", tree.listeners, tree.connections, public_ctx,
         public_connections);
  listen(control, std::move(admin_acceptor), "admin", tree.admin, tree.admin, admin_ctx,
         admin_connections);
  service.start(io, tree.workers);
  if (shared) shared->start_background(tree.store);

  for (auto& w : timing_warnings(cfg)) log::warn("timings do not fit", {{"detail", w}});
  log::always("listening", {{"port", port},
                            {"admin_port", admin_port},
                            {"bind", cfg.bind},
                            {"threads", cfg.threads},
                            {"workers", cfg.workers},
                            {"epoch", bus.epoch()},
                            {"store", durable ? journal->file().string() : cfg.store},
                            {"pod", ss.pod}});

  int exit_code = 1;
  asio::co_spawn(coord.executor(), coord.run(), [&](std::exception_ptr e, int code) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::error("coordinator failed", {{"error", ex.what()}});
      }
    } else {
      exit_code = code;
    }
    io.stop();
    control.stop();
  });

  // The network threads may run out of work before the drain ends (the workers have stopped,
  // the last session is gone) while the control plane still posts to them (a group's leave, a
  // late session): they stay until the coordinator is done and stops them.
  auto keep_running = asio::make_work_guard(io);
  std::vector<std::thread> threads;
  threads.emplace_back([&control] { control.run(); });
  for (unsigned i = 1; i < cfg.threads; ++i) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  cpu.join();
  return exit_code;
}

}  // namespace quiesce::app
