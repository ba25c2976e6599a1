// One event stream (docs/api.md, "The event stream"): hello, replay, live task events, subscribe,
// and a close that always says why (1012 on drain, 1013 when the client cannot keep up).
#pragma once

#include "net/stream_hub.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <optional>
#include <string>

namespace quiesce::net {

struct stream_request {
  std::string client_id;
  std::optional<std::uint64_t> since;
  std::optional<std::string> epoch;  // empty: this server's
};

// Accepts the upgrade in `req` and serves the stream until it closes. Runs on the
// connection's strand.
boost::asio::awaitable<void> serve_stream(
    boost::asio::ip::tcp::socket socket,
    boost::beast::http::request<boost::beast::http::string_body> req, stream_request what,
    stream_hub& hub);

}  // namespace quiesce::net
