#include "net/websocket_session.hpp"

#include "lifecycle/log.hpp"
#include "net/client_message.hpp"
#include "net/ws_wire.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/websocket.hpp>

#include <optional>
#include <vector>

namespace quiesce::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

namespace {

// A plain function, not part of the coroutine: its locals (the replay, the first frames) would
// otherwise stay in the stream's frame for as long as the stream is open.
std::shared_ptr<stream_client> open_stream(const asio::any_io_executor& strand,
                                           const stream_request& what, stream_hub& hub) {
  const auto& s = hub.settings();
  auto client = std::make_shared<stream_client>(strand, what.client_id, hub.limit());
  client->on_overflow = [&hub, id = what.client_id] {
    hub.count_dropped_slow();
    log::warn("slow stream closed", {{"client_id", id}, {"code", 1013}});
  };
  auto& bus = hub.bus();
  bool same_epoch = !what.epoch || *what.epoch == bus.epoch();
  bool admitted = hub.add(client);
  auto replay = bus.subscribe(client, what.since, same_epoch);
  // With one stream across replicas a client may come from a replica that had read further.
  if (same_epoch && what.since && *what.since > replay.last_seq) client->seen_through(*what.since);
  std::vector<frame> first;
  first.reserve(replay.events.size() + 2);
  first.push_back(make_frame({{"type", "hello"},
                              {"client_id", what.client_id},
                              {"pod", s.pod},
                              {"namespace", s.pod_namespace},
                              {"epoch", bus.epoch()},
                              {"seq", replay.last_seq}}));
  if (replay.gap) first.push_back(make_frame({{"type", "gap"}, {"epoch", bus.epoch()}}));
  for (auto& e : replay.events) first.emplace_back(e, &e->text);
  client->out().begin_with(std::move(first));
  if (!admitted)  // the drain already closed the others: this one goes the same way
    client->out().close(
        websocket::close_reason(websocket::close_code::service_restart, "server restarting"),
        hub.draining_frame());
  log::debug("stream opened", {{"client_id", what.client_id}, {"replayed", replay.events.size()}});
  return client;
}

}  // namespace

asio::awaitable<void> serve_stream(asio::ip::tcp::socket socket,
                                   beast::http::request<beast::http::string_body> req,
                                   stream_request what, stream_hub& hub) {
  const auto& s = hub.settings();
  boost::system::error_code ignored;
  socket.set_option(asio::socket_base::send_buffer_size(static_cast<int>(s.send_buffer)), ignored);
  auto ws = co_await accept_upgrade(std::move(socket), std::move(req), s.close_timeout);
  if (!ws) co_return;
  auto client = open_stream(co_await asio::this_coro::executor, what, hub);
  struct leave {
    stream_hub& hub;
    const std::shared_ptr<stream_client>& c;
    ~leave() {
      hub.bus().unsubscribe(c.get());
      hub.remove(c);
    }
  } on_exit{hub, client};
  const wire_settings settings{s.message_limit, s.ping_interval, s.close_timeout};
  wire_handlers on{[&c = *client](std::string_view text) { handle_client_message(c, text); },
                   [&hub](std::size_t n) { hub.count_sent(n); }};
  co_await async_run_wire(*ws, client->out(), settings, on, asio::use_awaitable);
}

}  // namespace quiesce::net
