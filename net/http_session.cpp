#include "net/http_session.hpp"

#include "net/connection_deadline.hpp"
#include "support/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <array>
#include <optional>
#include <string>

namespace quiesce::net {
namespace asio = boost::asio;
namespace beast = boost::beast;

namespace {

// The answer to a request that could not be read, or nothing when the peer just went away or
// was too slow (its deadline cancelled the read: a slow client is simply cut off).
std::optional<response> read_error_response(const boost::system::error_code& ec) {
  if (ec == http::error::body_limit)
    return error_response(http::status::payload_too_large, "body_too_large",
                          "the request body is larger than the server accepts (--body-limit)");
  if (ec == http::error::header_limit)
    return error_response(
        http::status::request_header_fields_too_large, "headers_too_large",
        "the request headers are larger than the server accepts (--header-limit)");
  if (ec.category() == make_error_code(http::error::bad_target).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message)
    return error_response(http::status::bad_request, "bad_request",
                          "the request is not valid HTTP/1.1: " + ec.message());
  return std::nullopt;
}

// The connection: its socket and the deadline of whatever read or write is in progress.
struct connection {
  tcp::socket& socket;
  connection_deadline& deadline;
  const http_limits& limits;
};

asio::awaitable<bool> write(connection& c, response& res) {
  const std::string head = response_head(res);
  const std::array<asio::const_buffer, 2> wire{asio::buffer(head), asio::buffer(res.body())};
  c.deadline.expires_after(c.limits.header_timeout);
  auto [ec, n] = co_await asio::async_write(c.socket, wire, asio::as_tuple(asio::use_awaitable));
  co_return !ec;
}

struct upgrade {
  request req;
  upgrade_opener open;
};

// Requests and answers until the connection ends, or until it asks for a stream it may open.
asio::awaitable<std::optional<upgrade>> exchange(connection& c, const session_context& ctx) {
  const auto& limits = ctx.limits;
  auto& socket = c.socket;
  beast::flat_buffer buffer;
  for (;;) {
    // Idle: wait for the first byte of the next request.
    if (buffer.size() == 0) {
      c.deadline.expires_after(limits.idle_timeout);
      auto [ec, n] = co_await socket.async_read_some(buffer.prepare(4096),
                                                     asio::as_tuple(asio::use_awaitable));
      if (ec) break;  // closed, idle timeout, or the drain's end
      buffer.commit(n);
    }
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits.header_limit));
    parser.body_limit(limits.body_limit);
    c.deadline.expires_after(limits.header_timeout);
    auto [hec, hn] = co_await http::async_read_header(socket, buffer, parser,
                                                      asio::as_tuple(asio::use_awaitable));
    boost::system::error_code ec = hec;
    if (!ec && parser.get()[http::field::expect] == "100-continue" && !parser.is_done()) {
      // curl sends larger bodies only after this (or after waiting a second).
      http::response<http::empty_body> go_on{http::status::continue_, 11};
      co_await http::async_write(socket, go_on, asio::as_tuple(asio::use_awaitable));
    }
    if (!ec)
      std::tie(ec, hn) =
          co_await http::async_read(socket, buffer, parser, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (auto res = read_error_response(ec)) {
        res->keep_alive(false);
        co_await write(c, *res);
      }
      break;
    }
    request req = parser.release();

    if (beast::websocket::is_upgrade(req)) {
      if (!ctx.routes.upgrade) {
        auto res = error_response(http::status::not_found, "not_found", "no streams here");
        res.keep_alive(false);
        co_await write(c, res);
        break;
      }
      auto decision = ctx.routes.upgrade(req);
      if (auto* open = std::get_if<upgrade_opener>(&decision))
        co_return upgrade{std::move(req), std::move(*open)};
      auto& refusal = std::get<response>(decision);
      refusal.keep_alive(false);
      co_await write(c, refusal);
      break;
    }

    auto res = co_await ctx.routes.answer(req);
    bool keep_alive = req.keep_alive() && !(ctx.phase && ctx.phase->draining());
    res.version(req.version());
    res.keep_alive(keep_alive);
    res.prepare_payload();
    if (!co_await write(c, res) || !keep_alive) break;
  }
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  co_return std::nullopt;
}

}  // namespace

asio::awaitable<void> serve_http(tcp::socket socket, std::shared_ptr<const session_context> ctx,
                                 connection_limit::slot /*place*/) {
  std::optional<upgrade> up;
  {
    connection_deadline deadline(socket);
    connection c{socket, deadline, ctx->limits};
    up = co_await exchange(c, *ctx);
  }
  // Gone before a stream starts that may stay open for hours: the exchange's frame (its parser
  // and read buffer) and the deadline's timer.
  if (!up) co_return;
  auto session = co_await up->open(std::move(socket), std::move(up->req));
  up.reset();
  if (session) co_await session->wire().async_run(asio::use_awaitable);
}

}  // namespace quiesce::net
