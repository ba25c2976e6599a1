#include "cli/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>

namespace quiesce::cli {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

std::optional<server_address> parse_server_url(const std::string& url) {
  auto u = boost::urls::parse_uri(url);
  if (!u || u->scheme() != "http" || u->host().empty()) return std::nullopt;
  server_address a;
  a.host = u->host();
  if (a.host.size() > 2 && a.host.front() == '[') a.host = a.host.substr(1, a.host.size() - 2);
  a.port = u->has_port() ? std::string(u->port()) : "80";
  a.host_header = std::string(u->host()) + ":" + a.port;
  return a;
}

asio::awaitable<bool> connect_to(const server_address& at, beast::tcp_stream& stream,
                                 std::string* why, std::chrono::seconds timeout) {
  tcp::resolver resolver(stream.get_executor());
  auto [rec, endpoints] =
      co_await resolver.async_resolve(at.host, at.port, asio::as_tuple(asio::use_awaitable));
  if (rec) {
    *why = "cannot resolve " + at.host + ": " + rec.message();
    co_return false;
  }
  stream.expires_after(timeout);
  auto [cec, ep] = co_await stream.async_connect(endpoints, asio::as_tuple(asio::use_awaitable));
  if (cec) {
    *why = "cannot connect to " + at.host_header + ": " + cec.message();
    co_return false;
  }
  co_return true;
}

asio::awaitable<std::optional<http_answer>> http_call(const server_address& at, http::verb method,
                                                      std::string target, std::string body,
                                                      std::string* why, std::string idempotency_key,
                                                      std::chrono::seconds timeout) {
  auto fail = [why](const std::string& what, const boost::system::error_code& ec) {
    if (why) *why = what + ": " + ec.message();
    return std::nullopt;
  };
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  if (!co_await connect_to(at, stream, why, timeout)) co_return std::nullopt;
  stream.expires_after(timeout);

  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, at.host_header);
  req.set(http::field::user_agent, "quiesce-cli");
  if (!idempotency_key.empty()) req.set("Idempotency-Key", idempotency_key);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.prepare_payload();
  auto [wec, wn] = co_await http::async_write(stream, req, asio::as_tuple(asio::use_awaitable));
  if (wec) co_return fail("cannot send to " + at.host_header, wec);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  auto [ec, n] =
      co_await http::async_read(stream, buffer, res, asio::as_tuple(asio::use_awaitable));
  if (ec) co_return fail("no answer from " + at.host_header, ec);
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);

  http_answer a;
  a.status = res.result_int();
  a.retry_after = std::string(res[http::field::retry_after]);
  boost::json::error_code jec;
  a.body = boost::json::parse(res.body(), jec);
  if (jec) a.body = nullptr;
  co_return a;
}

}  // namespace quiesce::cli
