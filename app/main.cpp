// quiesce: tasks over REST, events over WebSocket, and a drain that loses nothing on SIGTERM.
#include "app/config.hpp"
#include "app/server.hpp"
#include "command/orphan_reaper.hpp"
#include "support/log.hpp"

#include <csignal>
#include <iostream>

int main(int argc, char* argv[]) {
  using namespace quiesce;
  // Before any thread exists, so that every thread inherits both: a write to a command's pipe
  // after it exited is EPIPE, not death, and SIGCHLD is read from a signalfd, interrupting nothing.
  std::signal(SIGPIPE, SIG_IGN);
  command::block_child_signal();
  try {
    auto parsed = app::parse_config(argc, argv);
    if (auto* help = std::get_if<app::help_text>(&parsed)) {
      std::cout << help->text;
      return 0;
    }
    auto& cfg = std::get<app::config>(parsed);
    log::set_level(log::parse_level(cfg.log_level));
    return app::run_server(cfg);
  } catch (const std::invalid_argument& e) {
    log::error("bad configuration", {{"error", e.what()}});
    return 64;  // EX_USAGE
  } catch (const std::exception& e) {
    log::error("fatal", {{"error", e.what()}});
    return 1;
  }
}
