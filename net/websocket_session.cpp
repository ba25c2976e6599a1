#include "net/websocket_session.hpp"

#include "lifecycle/log.hpp"
#include "net/client_message.hpp"
#include "net/tcp_cork.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include <vector>

namespace quiesce::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using namespace asio::experimental::awaitable_operators;
using ws_stream = websocket::stream<beast::tcp_stream>;

namespace {

asio::awaitable<void> read_loop(ws_stream& ws, stream_client& c) {
  beast::flat_buffer buffer;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buffer, asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;  // peer closed, dead (ping timeout) or oversized frame: beast closed it
    handle_client_message(c, beast::buffers_to_string(buffer.data()));
    buffer.consume(buffer.size());
  }
}

asio::awaitable<bool> send(ws_stream& ws, const frame& f, stream_hub& hub) {
  auto [ec, n] = co_await ws.async_write(asio::buffer(*f), asio::as_tuple(asio::use_awaitable));
  if (!ec) hub.count_sent();
  co_return !ec;
}

// `first` (hello, gap, replay) goes out before anything queued. The replay is bounded by the
// retention window, not by the send queue: that limit is for live events a client falls behind on.
// A burst (the replay, or frames queued while one was written) goes out corked: full segments.
asio::awaitable<void> write_loop(ws_stream& ws, stream_client& c, std::vector<frame> first,
                                 stream_hub& hub) {
  tcp_cork cork(ws.next_layer().socket());
  cork.hold(first.size() > 1);  // the live loop below uncorks once nothing waits
  for (const auto& f : first)
    if (!co_await send(ws, f, hub)) co_return;
  first = {};  // the replayed events may leave the window now, and the capacity goes too
  for (;;) {
    if (c.out().waiting() == 0) cork.hold(false);  // the burst is over: what was held goes now
    auto item = co_await c.out().next();
    if (item.text) {
      if (c.out().waiting() > 0) cork.hold(true);  // more behind this one
      if (!co_await send(ws, item.text, hub)) co_return;
      continue;
    }
    cork.hold(false);
    // A peer gone before the handshake ends is not worth more than the close timeout.
    co_await ws.async_close(*item.close, asio::as_tuple(asio::use_awaitable));
    co_return;
  }
}

}  // namespace

asio::awaitable<void> serve_stream(beast::tcp_stream stream,
                                   beast::http::request<beast::http::string_body> req,
                                   stream_request what, stream_hub& hub) {
  auto strand = co_await asio::this_coro::executor;
  const auto& s = hub.settings();
  stream.expires_never();  // the websocket's own timeouts take over
  boost::system::error_code ignored;
  stream.socket().set_option(asio::socket_base::send_buffer_size(static_cast<int>(s.send_buffer)),
                             ignored);
  ws_stream ws(std::move(stream));
  websocket::stream_base::timeout t{};
  t.handshake_timeout = s.close_timeout;
  t.idle_timeout = s.ping_interval * 2;  // beast pings after half of it
  t.keep_alive_pings = true;
  ws.set_option(t);
  ws.read_message_max(s.message_limit);
  ws.text(true);
  auto [aec] = co_await ws.async_accept(req, asio::as_tuple(asio::use_awaitable));
  if (aec) co_return;
  req = {};  // this frame lives as long as the stream: keep no headers in it

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
  const auto replayed = replay.events.size();
  replay.events.clear();
  if (!admitted)  // the drain already closed the others: this one goes the same way
    client->out().close(
        websocket::close_reason(websocket::close_code::service_restart, "server restarting"),
        hub.draining_frame());

  struct leave {
    stream_hub& hub;
    const std::shared_ptr<stream_client>& c;
    ~leave() {
      hub.bus().unsubscribe(c.get());
      hub.remove(c);
    }
  } on_exit{hub, client};
  log::debug("stream opened", {{"client_id", what.client_id}, {"replayed", replayed}});
  co_await (read_loop(ws, *client) || write_loop(ws, *client, std::move(first), hub));
}

}  // namespace quiesce::net
