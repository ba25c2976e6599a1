// An accepted stream on the wire: every byte after the handshake, both ways, on one strand.
// Beast accepts the upgrade; from then on this owns the socket, so that whatever waits for a
// client goes out in one gather write (a pong or ping, every queued frame, the close), the
// frames' bytes shared by all clients and only a header per write. While idle it holds no
// read buffer: it waits for readability first. It answers pings, pings a silent peer and drops
// one that stays silent, and ends the close handshake as soon as the peer answers.
#pragma once

#include "net/outbox.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string_view>

namespace quiesce::net {

struct wire_settings {
  std::size_t message_limit{};  // largest message a client may send; past it: close 1009
  std::chrono::milliseconds ping_interval{};  // a peer silent for two of these is dropped
  std::chrono::milliseconds close_timeout{};  // how long a close waits for its answer
};

struct wire_handlers {
  std::function<void(std::string_view)> message;  // a whole text or binary message
  std::function<void(std::size_t)> sent;          // this many frames of the outbox are out
};

// Beast checks the upgrade in `req` and writes the 101; the socket comes back to be run here,
// with nothing of the handshake (its buffers and timers) left behind. Empty if it failed.
boost::asio::awaitable<std::optional<boost::asio::ip::tcp::socket>> accept_upgrade(
    boost::asio::ip::tcp::socket socket,
    boost::beast::http::request<boost::beast::http::string_body> req,
    std::chrono::milliseconds timeout);

// Sends what `out` holds and reads what the peer sends, until the close handshake ends (after
// the outbox's close, or the peer's), the peer goes away or breaks the protocol, or terminal
// cancellation. Then the caller drops the socket.
boost::asio::awaitable<void> run_wire(boost::asio::ip::tcp::socket& socket, outbox& out,
                                      const wire_settings& settings, wire_handlers handlers);

}  // namespace quiesce::net
