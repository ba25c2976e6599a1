#include "app/server.hpp"

#include "app/settings.hpp"
#include "lifecycle/log.hpp"
#include "tasks/pg/connection.hpp"
#include "tasks/pg/shared_events.hpp"

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
void listen(lifecycle::strand_source strands, net::tcp::acceptor acceptor, std::string name,
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
// answers even while the network threads are saturated (a fan-out to 10,000 streams had queued
// 220 ms of work ahead of the signal).
server::server(const config& cfg)
    : cfg_(cfg),
      io_(cfg.threads),
      control_(1),
      cpu_(cfg.cpu_threads),
      opened_(open_store()),
      store_(cfg.task_retention),
      bus_(opened_.epoch, cfg.event_retention, opened_.last_seq, std::move(opened_.events)),
      service_(make_service()),
      meter_(service_.kinds().names()),
      hub_(stream_settings_of(cfg), bus_),
      coord_(control_.get_executor(), drain_settings_of(cfg), hooks()),
      public_connections_(cfg.max_connections),
      admin_connections_(std::numeric_limits<std::size_t>::max()),
      state_{cfg_, service_, bus_, hub_, coord_.state(), public_connections_, meter_},
      public_ctx_(std::make_shared<const net::session_context>(net::session_context{
          http_limits_of(cfg), &coord_.state(), public_routes(state_), &hub_})),
      admin_ctx_(std::make_shared<const net::session_context>(
          net::session_context{http_limits_of(cfg), nullptr, admin_routes(state_), nullptr})),
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

// The first thing that can refuse a start. sqlite: the journal makes every change durable
// before it is delivered; postgres: the database numbers the service's events, so the bus
// starts where the service's stream is; memory: a new epoch, nothing survives this process.
tasks::stored_state server::open_store() {
  tasks::stored_state stored;
  if (cfg_.store == "sqlite") {
    try {
      journal_.emplace(journal_settings_of(cfg_, tasks::new_task_id()));
      return journal_->load();
    } catch (const tasks::storage_error& e) {
      log::error("cannot open the task store", {{"file", e.file}, {"error", e.what()}});
      throw start_failure{exit_storage};
    }
  }
  if (cfg_.store == "postgres") {
    if (auto bad = tasks::pg::conninfo_error(cfg_.database_url)) {
      log::error("cannot open the task store", {{"database_url", "invalid"}, {"error", *bad}});
      throw start_failure{exit_storage};
    }
    try {
      auto head = tasks::pg::open_database(cfg_.database_url, to_ms(cfg_.database_timeout),
                                           cfg_.event_retention);
      stored.epoch = std::move(head.epoch);
      stored.last_seq = head.last_seq;
      stored.events = std::move(head.events);
      return stored;
    } catch (const std::exception& e) {
      log::error("cannot open the task store", {{"store", "postgres"}, {"error", e.what()}});
      throw start_failure{exit_storage};
    }
  }
  stored.epoch = tasks::new_task_id();
  return stored;
}

// The shared service for postgres; otherwise the local one, which first takes back what an
// earlier process left unfinished.
tasks::service& server::make_service() {
  auto kinds = tasks::builtin_kinds(kind_settings_of(cfg_));
  if (cfg_.store == "postgres") {
    shared_.emplace(shared_settings_of(cfg_), std::move(kinds), bus_, cpu_);
    shared_->open();
    return *shared_;
  }
  std::vector<tasks::task_record> unfinished;
  for (auto& t : opened_.tasks) {
    store_.insert(t);
    if (!tasks::is_final(t.status)) unfinished.push_back(std::move(t));
  }
  opened_.tasks.clear();
  if (journal_) {
    journal_->start([this](const std::vector<tasks::event_ptr>& events, std::uint64_t settled) {
      bus_.deliver(events, settled);
    });
    bus_.attach(*journal_);
  }
  local_.emplace(service_settings_of(cfg_), std::move(kinds), store_, bus_, cpu_);
  if (journal_) local_->watch_store([&j = *journal_] { return j.healthy(); });
  local_->recover(unfinished);
  return *local_;
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
            auto c = service_.counts();
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
  service_.start(io_.strands(), tree.workers);
  if (shared_) shared_->start_background(tree.store);

  for (auto& w : timing_warnings(cfg_)) log::warn("timings do not fit", {{"detail", w}});
  log::always("listening", {{"port", port},
                            {"admin_port", admin_port},
                            {"bind", cfg_.bind},
                            {"threads", cfg_.threads},
                            {"workers", cfg_.workers},
                            {"epoch", bus_.epoch()},
                            {"store", journal_ ? journal_->file().string() : cfg_.store},
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
