// One event stream (docs/api.md, "The event stream"): hello, replay, live task events, subscribe,
// and a close that always says why (1012 on drain, 1013 when the client cannot keep up).
#pragma once

#include "net/http_session.hpp"
#include "net/ws_wire.hpp"
#include "stream/stream_hub.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <optional>
#include <string>

namespace quiesce::stream {

struct stream_request {
  std::string client_id;
  std::optional<std::uint64_t> since;
  std::optional<std::string> epoch;  // empty: this server's
};

inline net::wire_settings wire_settings_of(const stream_settings& s) {
  return {s.message_limit, s.ping_interval, s.close_timeout};
}

// One open stream: its client is in the hub and on the bus (it leaves both when destroyed), and
// the wire that owns its socket, which the HTTP session runs. A plain object, so that what it
// holds for the stream's whole life is this, not a coroutine frame (docs/development.md).
class stream_session final : public net::upgraded_session {
 public:
  stream_session(boost::asio::ip::tcp::socket socket, const stream_request& what, stream_hub& hub);
  stream_session(const stream_session&) = delete;
  stream_session& operator=(const stream_session&) = delete;
  ~stream_session() override;

  net::ws_wire& wire() override { return wire_; }

 private:
  net::wire_handlers handlers();

  stream_hub& hub_;
  std::shared_ptr<stream_client> client_;
  net::ws_wire wire_;  // its handlers use client_ and hub_: it goes first
};

// Accepts the upgrade in `req` and opens the stream; empty when the handshake failed. The caller
// runs it, after this coroutine (and what the handshake needed) is gone. On the connection's
// strand.
boost::asio::awaitable<std::unique_ptr<net::upgraded_session>> accept_stream(
    boost::asio::ip::tcp::socket socket, net::request req, stream_request what, stream_hub& hub);

// How the HTTP session opens the stream `what` asks for, once the routes have let it.
net::upgrade_opener stream_opener(stream_request what, stream_hub& hub);

}  // namespace quiesce::stream
