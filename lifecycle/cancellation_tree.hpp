// The root of every coroutine the server spawns, one task_group per kind of child.
// SIGTERM emits *partial* to its public side: only the acceptors opt in and stop. The deadline or a
// second signal emits *terminal*, which every coroutine honours.
#pragma once

#include "lifecycle/task_group.hpp"

namespace quiesce::lifecycle {

struct cancellation_tree {
  task_group listeners{"listeners"};      // public acceptors: stop at the first signal
  task_group connections{"connections"};  // public HTTP and WebSocket sessions
  task_group workers{"workers"};          // task runners
  task_group admin{"admin"};              // admin acceptor and sessions: last to go
  task_group store{"store"};  // a shared store's heartbeat and listener: leases live to the end

  // The first signal: partial to the public side only; admin probes keep answering.
  void drain() {
    for (auto* g : {&listeners, &connections, &workers})
      g->emit(boost::asio::cancellation_type::partial);
  }
  // The end: every coroutine stops.
  void stop() {
    for (auto* g : {&listeners, &connections, &workers, &admin, &store})
      g->emit(boost::asio::cancellation_type::terminal);
  }
};

}  // namespace quiesce::lifecycle
