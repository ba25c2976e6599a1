#include "stream/websocket_session.hpp"

#include "net/ws_wire.hpp"
#include "stream/client_message.hpp"
#include "support/log.hpp"

#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <optional>
#include <vector>

namespace quiesce::stream {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

namespace {

// A plain function, not part of the coroutine: its locals (the replay, the first frames) would
// otherwise stay in the stream's frame for as long as the stream is open.
std::shared_ptr<stream_client> open_stream(const asio::any_io_executor& strand,
                                           const stream_request& what, stream_hub& hub) {
  const auto& s = hub.settings();
  auto fanout = hub.fanout_for(strand);
  auto client = std::make_shared<stream_client>(fanout, what.client_id, hub.limit());
  client->on_overflow = [&hub, id = what.client_id] {
    hub.count_dropped_slow();
    log::warn("slow stream closed", {{"client_id", id}, {"code", 1013}});
  };
  auto& bus = hub.bus();
  bool same_epoch = !what.epoch || *what.epoch == bus.epoch();
  bool admitted = hub.add(client);
  // The thread's fanout is on the bus already: what it takes after the replay's last event
  // is this client's, from the moment it is added (on this thread, before the fanout's next take).
  auto replay = bus.replay_from(what.since, same_epoch);
  fanout->add(client);
  // With one stream across replicas a client may come from a replica that had read further.
  client->seen_through(same_epoch && what.since ? std::max(*what.since, replay.last_seq)
                                                : replay.last_seq);
  std::vector<queued> first;
  first.reserve(replay.events.size() + 2);
  first.emplace_back(make_frame({{"type", "hello"},
                                 {"client_id", what.client_id},
                                 {"pod", s.pod},
                                 {"namespace", s.pod_namespace},
                                 {"epoch", bus.epoch()},
                                 {"seq", replay.last_seq}}));
  if (replay.gap) first.emplace_back(make_frame(tasks::gap_message(bus.epoch())));
  for (auto& e : replay.events) first.emplace_back(frame(e, &e->text));
  client->out().begin_with(std::move(first));
  if (!admitted)  // the drain already closed the others: this one goes the same way
    client->out().close(
        websocket::close_reason(websocket::close_code::service_restart, "server restarting"),
        hub.draining_frame());
  log::debug("stream opened", {{"client_id", what.client_id}, {"replayed", replay.events.size()}});
  return client;
}

}  // namespace

stream_session::stream_session(asio::ip::tcp::socket socket, const stream_request& what,
                               stream_hub& hub)
    : hub_(hub),
      client_(open_stream(socket.get_executor(), what, hub)),
      wire_(std::move(socket), client_->out(), wire_settings_of(hub.settings()), handlers()) {}

net::wire_handlers stream_session::handlers() {
  return {[&c = *client_](std::string_view text) { handle_client_message(c, text); },
          [&hub = hub_](std::size_t n) { hub.count_sent(n); }};
}

stream_session::~stream_session() {
  client_->fanout().remove(*client_);
  hub_.remove(client_);
}

asio::awaitable<std::unique_ptr<net::upgraded_session>> accept_stream(asio::ip::tcp::socket socket,
                                                                      net::request req,
                                                                      stream_request what,
                                                                      stream_hub& hub) {
  boost::system::error_code ignored;
  socket.set_option(
      asio::socket_base::send_buffer_size(static_cast<int>(hub.settings().send_buffer)), ignored);
  auto ws =
      co_await net::accept_upgrade(std::move(socket), std::move(req), hub.settings().close_timeout);
  if (!ws) co_return nullptr;
  co_return std::make_unique<stream_session>(std::move(*ws), what, hub);
}

net::upgrade_opener stream_opener(stream_request what, stream_hub& hub) {
  // Not a coroutine itself: accept_stream's parameters are its own copies.
  return [what = std::move(what), &hub](asio::ip::tcp::socket socket, net::request req) {
    return accept_stream(std::move(socket), std::move(req), what, hub);
  };
}

}  // namespace quiesce::stream
