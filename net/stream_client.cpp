#include "net/stream_client.hpp"

#include "net/stream_fanout.hpp"

namespace quiesce::net {

stream_client::stream_client(std::shared_ptr<stream_fanout> fanout, std::string id,
                             std::shared_ptr<const send_limit> limit)
    : fanout_(std::move(fanout)), id_(std::move(id)), out_(std::move(limit)) {}

void stream_client::request_close(boost::beast::websocket::close_reason reason, frame last) {
  fanout_->request_close(shared_from_this(), std::move(reason), std::move(last));
}

void stream_client::take(const std::vector<tasks::event_ptr>& batch) {
  out_.begin_burst();
  for (const auto& e : batch) {
    if (!wants(*e)) continue;
    // Share the bus's text: an aliasing pointer, no copy per client.
    if (!out_.push(frame(e, &e->text)) && on_overflow) on_overflow();
  }
  out_.end_burst();
}

}  // namespace quiesce::net
