// An event sink that keeps what the bus delivered, for tests of the bus and the services.
#pragma once

#include "tasks/event_bus.hpp"

#include <vector>

namespace quiesce::tasks {

struct collecting_sink : event_sink {
  std::vector<event_ptr> got;
  void deliver(event_ptr e) override { got.push_back(std::move(e)); }
};

}  // namespace quiesce::tasks
