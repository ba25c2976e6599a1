// The parts the routes talk to, wired once in server.cpp.
#pragma once

#include "app/config.hpp"
#include "app/metrics.hpp"
#include "lifecycle/phase.hpp"
#include "net/http_session.hpp"
#include "stream/stream_hub.hpp"
#include "tasks/event_bus.hpp"
#include "tasks/service.hpp"

namespace quiesce::app {

struct app_state {
  const config& cfg;
  tasks::service& tasks;
  tasks::event_bus& bus;
  stream::stream_hub& streams;
  const lifecycle::phase_state& phase;
  const net::connection_limit& connections;  // the public listener's
  app::metrics& metrics;
};

net::http_routes public_routes(app_state& s);  // public_api.cpp
net::http_routes admin_routes(app_state& s);   // admin_api.cpp

}  // namespace quiesce::app
