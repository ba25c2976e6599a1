// One HTTP/1.1 connection: read a request, answer it, repeat; hand WebSocket upgrades over to
// the stream. During a drain every answer carries `Connection: close` and the connection ends
// after it; a request in flight always completes.
#pragma once

#include "lifecycle/phase.hpp"
#include "net/connection_limit.hpp"
#include "net/http.hpp"
#include "net/listener.hpp"
#include "net/websocket_session.hpp"

#include <functional>
#include <memory>
#include <variant>

namespace quiesce::net {

// What the application does with requests (app/ supplies it).
struct http_routes {
  std::function<boost::asio::awaitable<response>(request&)> answer;
  // For a WebSocket upgrade: the stream to open, or the response that refuses it.
  std::function<std::variant<response, stream_request>(const request&)> upgrade;
};

struct session_context {
  http_limits limits;
  const lifecycle::phase_state* phase = nullptr;  // set: connections close once draining
  http_routes routes;
  stream_hub* streams = nullptr;  // null: no upgrades on this listener
};

// `place` is held until the connection ends, its WebSocket stream included.
boost::asio::awaitable<void> serve_http(tcp::socket socket,
                                        std::shared_ptr<const session_context> ctx,
                                        connection_limit::slot place);

}  // namespace quiesce::net
