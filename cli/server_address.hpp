// Where the server is: --url (or QUIESCE_URL), e.g. http://127.0.0.1:8000.
#pragma once

#include <optional>
#include <string>

namespace quiesce::cli {

struct server_address {
  std::string host;
  std::string port;
  std::string host_header;  // host:port, as the Host header and the WebSocket handshake send it
};

// nullopt: not an http:// URL with a host.
std::optional<server_address> parse_server_url(const std::string& url);

}  // namespace quiesce::cli
