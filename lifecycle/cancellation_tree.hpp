// The root of every coroutine the server spawns, one task_group per kind of child.
// Closing admission (at the signal, or after --drain-delay) emits *partial* to the public
// acceptors, the only coroutines that opt in to it: they stop. The deadline or a second signal
// emits *terminal* to the workers, and the end of the drain to every group.
#pragma once

#include "lifecycle/task_group.hpp"

namespace quiesce::lifecycle {

struct cancellation_tree {
  task_group listeners{"listeners"};      // public acceptors: stop at the first signal
  task_group connections{"connections"};  // public HTTP and WebSocket sessions
  task_group workers{"workers"};          // task runners
  task_group admin{"admin"};              // admin acceptor and sessions: last to go
  task_group store{"store"};  // a shared store's heartbeat and listener (leases live to the end),
                              // the orphan reaper

  // Admission closes: the public acceptors stop. Sessions and workers are not told (they go on
  // serving what was accepted); admin probes keep answering.
  void drain() { listeners.emit(boost::asio::cancellation_type::partial); }
  // The end: every coroutine stops.
  void stop() {
    for (auto* g : {&listeners, &connections, &workers, &admin, &store})
      g->emit(boost::asio::cancellation_type::terminal);
  }
};

}  // namespace quiesce::lifecycle
