// One event stream (docs/api.md, "The event stream"): hello, replay, live task events, subscribe,
// and a close that always says why (1012 on drain, 1013 when the client cannot keep up).
#pragma once

#include "net/stream_hub.hpp"
#include "net/ws_wire.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <memory>
#include <optional>
#include <string>

namespace quiesce::net {

struct stream_request {
  std::string client_id;
  std::optional<std::uint64_t> since;
  std::optional<std::string> epoch;  // empty: this server's
};

inline wire_settings wire_settings_of(const stream_settings& s) {
  return {s.message_limit, s.ping_interval, s.close_timeout};
}

// One open stream: its client is in the hub and on the bus (it leaves both when destroyed), and
// the wire that owns its socket. A plain object, so that what it holds for the stream's whole
// life is this, not a coroutine frame (docs/development.md).
class stream_session {
 public:
  stream_session(boost::asio::ip::tcp::socket socket, const stream_request& what, stream_hub& hub);
  stream_session(const stream_session&) = delete;
  stream_session& operator=(const stream_session&) = delete;
  ~stream_session();

  // Serves the stream until it closes (net/ws_wire.hpp). On the connection's strand; once.
  template <class Token>
  auto async_run(Token&& token) {
    return wire_.async_run(std::forward<Token>(token));
  }

 private:
  wire_handlers handlers();

  stream_hub& hub_;
  std::shared_ptr<stream_client> client_;
  ws_wire wire_;  // its handlers use client_ and hub_: it goes first
};

// Accepts the upgrade in `req` and opens the stream; empty when the handshake failed. The caller
// runs it, after this coroutine (and what the handshake needed) is gone. On the connection's
// strand.
boost::asio::awaitable<std::unique_ptr<stream_session>> accept_stream(
    boost::asio::ip::tcp::socket socket,
    boost::beast::http::request<boost::beast::http::string_body> req, stream_request what,
    stream_hub& hub);

}  // namespace quiesce::net
