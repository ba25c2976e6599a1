#include "app/server.hpp"

#include "app/settings.hpp"
#include "command/child_process.hpp"
#include "command/orphan_reaper.hpp"
#include "support/log.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>

#include <sys/resource.h>

#include <functional>
#include <limits>
#include <thread>

namespace quiesce::app {
namespace asio = boost::asio;

namespace {

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
// served on its own strand from `strands`, unless `limit` says too many are open. A listener that
// ends by an error (not by the drain) is logged and `died` is called.
void listen(lifecycle::executor_source strands, net::tcp::acceptor acceptor, std::string name,
            lifecycle::task_group& group, lifecycle::task_group& sessions,
            std::shared_ptr<const net::session_context> ctx, net::connection_limit& limit,
            std::function<void()> died) {
  auto strand = acceptor.get_executor();
  auto spawn = [&sessions, ctx, &limit](net::tcp::socket s) {
    auto place = limit.try_acquire();
    if (!place) return refuse(s, limit);
    auto session_strand = s.get_executor();  // accepted onto its own strand
    sessions.spawn(session_strand, net::serve_http(std::move(s), ctx, std::move(place)));
  };
  auto ended = [name, died = std::move(died)](std::exception_ptr e) {
    if (!e) return;
    log::error("listener failed", {{"listener", name}, {"error", log::describe(e)}});
    died();
  };
  group.spawn(strand, net::accept_loop(std::move(acceptor), std::move(strands), name, spawn),
              std::move(ended));
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

// The control plane has its own thread, so a SIGTERM closes the public listener and probes get
// answers even while the network threads are saturated (a fan-out to many streams queues work
// ahead of the signal: bench/HISTORY.md, the first run).
server::server(const config& cfg)
    : cfg_(cfg),
      io_(cfg.threads),
      control_(1),
      cpu_(cfg.cpu_threads),
      store_(open_store()),
      service_(store_->tasks()),
      bus_(store_->events()),
      meter_(service_.kinds().names()),
      hub_(stream_settings_of(cfg), bus_),
      coord_(control_.get_executor(), drain_settings_of(cfg), hooks()),
      public_connections_(cfg.max_connections),
      admin_connections_(std::numeric_limits<std::size_t>::max()),
      state_{cfg_, service_, bus_, hub_, coord_.state(), public_connections_, meter_},
      public_ctx_(std::make_shared<const net::session_context>(
          net::session_context{http_limits_of(cfg), &coord_.state(), public_routes(state_)})),
      admin_ctx_(std::make_shared<const net::session_context>(
          net::session_context{http_limits_of(cfg), nullptr, admin_routes(state_)})),
      public_acceptor_(control_),
      admin_acceptor_(control_) {
  service_.observe(meter_);
  open_listeners();
}

// Frames still queued (a drain that timed out leaves some) point at the members: they are
// destroyed first, while everything they point at still exists.
server::~server() {
  io_.shutdown();
  control_.shutdown();
}

std::unique_ptr<tasks::store> server::open_store() {
  try {
    auto commands = command_kinds_of(cfg_);
    for (auto& k : commands) longest_kill_grace_ = std::max(longest_kill_grace_, k.kill_grace);
    return tasks::open_store(store_settings_of(cfg_), kinds_of(cfg_, commands), cpu_);
  } catch (const tasks::store_unusable&) {
    throw start_failure{exit_storage};  // logged with its reason
  }
}

lifecycle::drain_hooks server::hooks() {
  return {
      .stop_admission = [this] { service_.stop_admission(); },
      .work_done = [this] { return service_.wait_idle(); },
      .interrupt_queued = [this] { return service_.interrupt_queued(); },
      // One last event per queued or running task, with nothing between them to pace it.
      .forcing = [this] { hub_.allow_burst(cfg_.queue_capacity + cfg_.workers); },
      .close_streams = [this](std::chrono::milliseconds spread) { return hub_.close_all(spread); },
      .counts =
          [this] {
            auto c = service_.known_counts();
            return boost::json::object{
                {"queued", c.queued}, {"running", c.running}, {"websockets", hub_.open()}};
          },
  };
}

// Both listeners are opened on the control plane's thread, each with its address's own family:
// 0.0.0.0 is IPv4 only, :: is both.
void server::open_listeners() {
  try {
    auto address = asio::ip::make_address(cfg_.bind);
    public_acceptor_ = net::open_acceptor(asio::make_strand(control_),
                                          {address, static_cast<std::uint16_t>(cfg_.port)});
    admin_acceptor_ = net::open_acceptor(asio::make_strand(control_),
                                         {address, static_cast<std::uint16_t>(cfg_.admin_port)});
  } catch (const std::exception& e) {
    log::error("cannot listen", {{"bind", cfg_.bind},
                                 {"port", cfg_.port},
                                 {"admin_port", cfg_.admin_port},
                                 {"error", e.what()}});
    throw start_failure{1};
  }
}

int server::run() {
  auto port = public_acceptor_.local_endpoint().port();
  auto admin_port = admin_acceptor_.local_endpoint().port();
  auto& tree = coord_.tree();
  listen(io_.strands(), std::move(public_acceptor_), "public", tree.listeners, tree.connections,
         public_ctx_, public_connections_, [this] { coord_.lose_listener(); });
  // The kubelet notices a dead admin listener by itself: its probes fail.
  listen(lifecycle::executor_of(control_), std::move(admin_acceptor_), "admin", tree.admin,
         tree.admin, admin_ctx_, admin_connections_, [] {});
  store_->start(io_.strands(), tree.workers, tree.store);
  // Orphans of command kinds (and, as PID 1, of anyone) come back here: reaped as they exit.
  command::become_subreaper();
  tree.store.spawn(control_.get_executor(), command::reap_orphans());

  for (auto& w : timing_warnings(cfg_, longest_kill_grace_))
    log::warn("timings do not fit", {{"detail", w}});
  log::always("listening", {{"port", port},
                            {"admin_port", admin_port},
                            {"bind", cfg_.bind},
                            {"threads", cfg_.threads},
                            {"workers", cfg_.workers},
                            {"epoch", bus_.epoch()},
                            {"store", store_->name()},
                            {"pod", hub_.settings().pod}});

  int exit_code = 1;
  asio::co_spawn(coord_.executor(), coord_.run(), [&](std::exception_ptr e, int code) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::error("coordinator failed", {{"error", ex.what()}});
      }
    } else {
      exit_code = code;
    }
    io_.stop();
    control_.stop();
  });

  std::thread control([this] { control_.run(); });
  io_.run();
  control.join();
  cpu_.join();
  return exit_code;
}

int run_server(const config& cfg) {
  raise_descriptor_limit(cfg);
  try {
    server s(cfg);
    return s.run();
  } catch (const start_failure& f) {
    return f.code;
  }
}

}  // namespace quiesce::app
