// One HTTP request to the server on a new connection, as a coroutine: the CLI makes a handful,
// so keep-alive would buy nothing.
#pragma once

#include "cli/server_address.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace quiesce::cli {

struct http_answer {
  unsigned status = 0;
  boost::json::value body;  // null when the body is not JSON
  std::string retry_after;
};

// Resolves and connects `stream` (bounded by `timeout`); false with `why` set when it cannot.
boost::asio::awaitable<bool> connect_to(const server_address& at, boost::beast::tcp_stream& stream,
                                        std::string* why, std::chrono::seconds timeout);

// nullopt: the server could not be reached (refused, reset, timed out), with `why` set.
boost::asio::awaitable<std::optional<http_answer>> http_call(
    const server_address& at, boost::beast::http::verb method, std::string target, std::string body,
    std::string* why, std::string idempotency_key = {},
    std::chrono::seconds timeout = std::chrono::seconds(30));

}  // namespace quiesce::cli
