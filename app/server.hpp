// The whole process, wired once. Each part is a member declared after the parts it uses: it is
// built after them and destroyed before them, on every way out (a start that fails included).
#pragma once

#include "app/app_state.hpp"
#include "app/config.hpp"
#include "app/metrics.hpp"
#include "app/network_threads.hpp"
#include "lifecycle/coordinator.hpp"
#include "net/connection_limit.hpp"
#include "net/http_session.hpp"
#include "net/listener.hpp"
#include "stream/stream_hub.hpp"
#include "tasks/store.hpp"

#include <boost/asio/thread_pool.hpp>

#include <memory>
#include <optional>

namespace quiesce::app {

// The task store cannot be opened (missing, read-only or corrupt data): EX_IOERR.
inline constexpr int exit_storage = 74;

// A start-up step failed and said why in the log; the process exits with `code`.
struct start_failure {
  int code;
};

class server {
 public:
  // Opens the store and both listeners; throws start_failure.
  explicit server(const config& cfg);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Serves until the drain ends; returns the process exit code.
  int run();

 private:
  std::unique_ptr<tasks::store> open_store();
  lifecycle::drain_hooks hooks();
  void open_listeners();

  const config cfg_;
  std::chrono::milliseconds longest_kill_grace_{};  // of the command kinds: the timing check
  network_threads io_;                              // public sessions and workers
  owned_context control_;  // its own thread: signals, the coordinator, listeners, admin sessions
  boost::asio::thread_pool cpu_;         // CPU-bound task kinds
  std::unique_ptr<tasks::store> store_;  // the first thing that can refuse a start
  tasks::service& service_;
  tasks::event_bus& bus_;
  metrics meter_;
  stream::stream_hub hub_;
  lifecycle::coordinator coord_;
  net::connection_limit public_connections_;
  net::connection_limit admin_connections_;  // the kubelet's probes; not exposed outside the pod
  app_state state_;
  std::shared_ptr<const net::session_context> public_ctx_;
  std::shared_ptr<const net::session_context> admin_ctx_;
  net::tcp::acceptor public_acceptor_;
  net::tcp::acceptor admin_acceptor_;
};

// Runs the server until it has drained; returns the process exit code.
int run_server(const config& cfg);

}  // namespace quiesce::app
