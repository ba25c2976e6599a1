#include "net/listener.hpp"

#include "support/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace quiesce::net {
namespace asio = boost::asio;

tcp::acceptor open_acceptor(asio::any_io_executor executor, const tcp::endpoint& endpoint) {
  tcp::acceptor a(executor);
  a.open(endpoint.protocol());
  a.set_option(asio::socket_base::reuse_address(true));
  a.bind(endpoint);
  a.listen(asio::socket_base::max_listen_connections);
  return a;
}

asio::awaitable<void> accept_loop(tcp::acceptor acceptor, lifecycle::executor_source sessions,
                                  std::string name, std::function<void(tcp::socket)> spawn) {
  co_await asio::this_coro::reset_cancellation_state(asio::enable_partial_cancellation());
  for (;;) {
    // Each connection is accepted straight onto its own strand (on the next network thread), with
    // the listener's protocol: an IPv4 listener needs no IPv6 in the kernel (ipv6.disable=1 nodes).
    auto [ec, socket] =
        co_await acceptor.async_accept(sessions(), asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted) break;
    if (ec) {
      // Out of descriptors, say: back off a little instead of spinning; connects queue meanwhile.
      log::warn("accept failed", {{"listener", name}, {"error", ec.message()}});
      asio::steady_timer backoff(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
      auto [wec] = co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
      if (wec) break;
      continue;
    }
    // A peer may already have reset the connection: that is its loss, not the listener's.
    boost::system::error_code nodelay;
    socket.set_option(tcp::no_delay(true), nodelay);
    spawn(std::move(socket));
  }
  boost::system::error_code ignored;
  acceptor.close(ignored);
  log::debug("listener closed", {{"listener", name}});
}

}  // namespace quiesce::net
