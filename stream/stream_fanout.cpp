#include "stream/stream_fanout.hpp"

#include "stream/stream_client.hpp"

#include <boost/asio/post.hpp>

#include <cassert>
#include <cstdint>
#include <utility>

namespace quiesce::stream {
namespace asio = boost::asio;

void stream_fanout::deliver(tasks::event_ptr e) {
  std::lock_guard lock(mutex_);
  inbox_.push_back(std::move(e));
  post_take();
}

void stream_fanout::request_close(std::shared_ptr<stream_client> c,
                                  boost::beast::websocket::close_reason reason, frame last) {
  std::lock_guard lock(mutex_);
  closes_.push_back({std::move(c), std::move(reason), std::move(last)});
  post_take();
}

void stream_fanout::post_take() {
  if (std::exchange(take_posted_, true)) return;
  asio::post(thread_, [self = shared_from_this()] { self->hold_then_take(); });
}

void stream_fanout::hold_then_take() {
  if (hold_.count() == 0) return take();
  timer_.expires_after(hold_);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code) { self->take(); });
}

void stream_fanout::take() {
  {
    std::lock_guard lock(mutex_);
    taking_.swap(inbox_);
    closing_.swap(closes_);
    take_posted_ = false;
  }
  if (!taking_.empty()) {
    taking_now_ = true;
    taken_batch batch(taking_);
    for (auto& c : clients_) c->take(batch);
    taking_now_ = false;
  }
  // The texts are not held past their take: each client's outbox holds what it still sends.
  taking_.clear();
  for (auto& r : closing_) r.client->out().close(std::move(r.reason), std::move(r.last));
  closing_.clear();
}

// A client joins or leaves from its own stream's handlers, never from inside take(): a burst's
// write that fails ends the wire by posting, and the stream ends in a later handler.
void stream_fanout::add(const std::shared_ptr<stream_client>& c) {
  assert(!taking_now_);
  c->slot_ = clients_.size();
  clients_.push_back(c);
}

void stream_fanout::remove(stream_client& c) {
  assert(!taking_now_);
  std::size_t i = c.slot_;
  if (i >= clients_.size() || clients_[i].get() != &c) return;
  c.slot_ = SIZE_MAX;
  // Swap with the last and pop: 10,000 streams closing at once stay linear.
  if (i + 1 != clients_.size()) {
    clients_[i] = std::move(clients_.back());
    clients_[i]->slot_ = i;
  }
  clients_.pop_back();
}

}  // namespace quiesce::stream
