// libFuzzer: one HTTP request as bytes off the wire, through the parser with the server's limits,
// then the public routes (JSON validation, admission, lookups, cancels, upgrades), in memory.
#include "app/app_state.hpp"
#include "app/settings.hpp"
#include "tasks/memory_task_store.hpp"
#include "tasks/task_service.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <cstdint>

namespace {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using namespace quiesce;

// A server's parts without sockets, made afresh for each input so that no state carries over.
struct server_parts {
  app::config cfg{.store = "memory"};
  tasks::memory_task_store store{cfg.task_retention};
  tasks::event_bus bus{"fuzz-epoch", 64};
  tasks::task_service service;
  stream::stream_hub hub;
  lifecycle::phase_state phase;
  net::connection_limit connections{16};
  app::metrics meter{service.kinds().names()};
  app::app_state state{cfg, service, bus, hub, phase, connections, meter};
  net::http_routes routes = app::public_routes(state);

  explicit server_parts(asio::thread_pool& cpu)
      : service(app::service_settings_of(cfg), tasks::builtin_kinds(app::kind_settings_of(cfg)),
                store, bus, cpu),
        hub(app::stream_settings_of(cfg), bus) {}
};

std::optional<net::request> parse(const std::uint8_t* data, std::size_t size,
                                  const app::config& cfg) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(cfg.header_limit));
  parser.body_limit(cfg.body_limit);
  boost::system::error_code ec;
  while (!parser.is_done()) {
    auto n = parser.put(asio::buffer(data, size), ec);
    data += n;
    size -= n;
    if (ec == http::error::need_more) ec = {};
    if (ec) return std::nullopt;
    if (n == 0) {
      // The input ended: a body delimited by the end of the stream is complete, anything else not.
      if (!parser.got_some()) return std::nullopt;
      parser.put_eof(ec);
      if (ec || !parser.is_done()) return std::nullopt;
    }
  }
  return parser.release();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static asio::thread_pool cpu(1);
  server_parts parts(cpu);
  auto req = parse(data, size, parts.cfg);
  if (!req) return 0;
  if (boost::beast::websocket::is_upgrade(*req)) {
    auto decision = parts.routes.upgrade(*req);
    if (auto* res = std::get_if<net::response>(&decision)) res->prepare_payload();
    return 0;
  }
  asio::io_context io;
  // A route that throws would end the connection's session: a finding, so it is rethrown.
  asio::co_spawn(io, parts.routes.answer(*req), [](std::exception_ptr e, net::response res) {
    if (e) std::rethrow_exception(e);
    res.prepare_payload();
  });
  io.run();
  return 0;
}
