// One HTTP/1.1 connection: read a request, answer it, repeat; hand WebSocket upgrades over to
// whatever the routes open on them. During a drain every answer carries `Connection: close` and
// the connection ends after it; a request in flight always completes.
#pragma once

#include "lifecycle/phase.hpp"
#include "net/connection_limit.hpp"
#include "net/http.hpp"
#include "net/listener.hpp"
#include "net/ws_wire.hpp"

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <variant>

namespace quiesce::net {

// What an accepted upgrade became: whatever owns the wire the connection then runs on.
class upgraded_session {
 public:
  virtual ~upgraded_session() = default;
  virtual ws_wire& wire() = 0;
};
// Accepts the upgrade (the handshake) and opens what runs on it; null when the handshake failed.
// On the connection's strand.
using upgrade_opener =
    std::function<boost::asio::awaitable<std::unique_ptr<upgraded_session>>(tcp::socket, request)>;

// What the application does with requests (app/ supplies it).
struct http_routes {
  std::function<boost::asio::awaitable<response>(request&)> answer;
  // For a WebSocket upgrade: how to open it, or the response that refuses it. Unset: this
  // listener has no upgrades (404).
  std::function<std::variant<response, upgrade_opener>(const request&)> upgrade;
};

struct session_context {
  http_limits limits;
  const lifecycle::phase_state* phase = nullptr;  // set: connections close once draining
  http_routes routes;
};

// `place` is held until the connection ends, its WebSocket stream included.
boost::asio::awaitable<void> serve_http(tcp::socket socket,
                                        std::shared_ptr<const session_context> ctx,
                                        connection_limit::slot place);

}  // namespace quiesce::net
