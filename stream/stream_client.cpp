#include "stream/stream_client.hpp"

#include "net/ws_frame.hpp"
#include "stream/stream_fanout.hpp"

#include <algorithm>

namespace quiesce::stream {

stream_client::stream_client(std::shared_ptr<stream_fanout> fanout, std::string id,
                             std::shared_ptr<const send_limit> limit)
    : fanout_(std::move(fanout)), id_(std::move(id)), out_(std::move(limit)) {}

void stream_client::request_close(boost::beast::websocket::close_reason reason, frame last) {
  fanout_->request_close(shared_from_this(), std::move(reason), std::move(last));
}

taken_batch::taken_batch(const std::vector<tasks::event_ptr>& events) : events_(events) {
  if (events_.empty()) return;
  lowest_seq_ = events_.front()->seq;
  for (const auto& e : events_) lowest_seq_ = std::min(lowest_seq_, e->seq);
}

const std::shared_ptr<const framed_run>& taken_batch::run() {
  if (run_) return run_;
  auto run = std::make_shared<framed_run>();
  std::size_t size = 0;
  for (const auto& e : events_) size += e->text.size() + 10;  // 10: the longest header
  run->bytes.reserve(size);
  for (const auto& e : events_) {
    auto h = net::ws::frame_header(net::ws::opcode::text, e->text.size());
    run->bytes.append(reinterpret_cast<const char*>(h.bytes.data()), h.size);
    run->bytes.append(e->text);
    run->text_bytes += e->text.size();
  }
  run->frames = events_.size();
  run_ = std::move(run);
  return run_;
}

void stream_client::take(taken_batch& batch) {
  const auto& events = batch.events();
  out_.begin_burst();
  if (follow_all_ && !events.empty() && batch.lowest_seq() > seen_ &&
      out_.has_room_for(*batch.run())) {
    out_.push(batch.run());
  } else {
    for (const auto& e : events) {
      if (!wants(*e)) continue;
      // Share the bus's text: an aliasing pointer, no copy per client.
      if (!out_.push(frame(e, &e->text)) && on_overflow) on_overflow();
    }
  }
  out_.end_burst();
}

}  // namespace quiesce::stream
