// The accept loop of one listener. It opts in to partial cancellation, so the first signal
// closes the socket at once and new connects are refused by the kernel.
#pragma once

#include "lifecycle/executor_source.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <string>

namespace quiesce::net {

using tcp = boost::asio::ip::tcp;

// Opens `endpoint` (port 0: the kernel picks) on the caller's executor; throws on failure.
tcp::acceptor open_acceptor(boost::asio::any_io_executor executor, const tcp::endpoint& endpoint);

// Accepts until cancelled, handing each connection to `spawn` on a new strand from `sessions`.
boost::asio::awaitable<void> accept_loop(tcp::acceptor acceptor,
                                         lifecycle::executor_source sessions, std::string name,
                                         std::function<void(tcp::socket)> spawn);

}  // namespace quiesce::net
