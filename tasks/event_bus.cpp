#include "tasks/event_bus.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>

namespace quiesce::tasks {

event_bus::event_bus(std::string epoch, std::size_t retention)
    : epoch_(std::move(epoch)), retention_(std::max<std::size_t>(retention, 1)) {}

void event_bus::publish(std::string task_id, boost::json::object body) {
  std::lock_guard lock(mutex_);
  body["seq"] = ++seq_;
  auto e = std::make_shared<const stream_event>(
      stream_event{seq_, std::move(task_id), boost::json::serialize(body)});
  window_.push_back(e);
  if (window_.size() > retention_) window_.pop_front();
  // Delivering under the lock is what keeps seq increasing on every stream.
  for (auto& s : sinks_) s->deliver(e);
}

event_bus::replay event_bus::subscribe(std::shared_ptr<event_sink> sink,
                                       std::optional<std::uint64_t> since, bool same_epoch) {
  std::lock_guard lock(mutex_);
  replay r;
  r.last_seq = seq_;
  if (since || !same_epoch) {
    std::uint64_t after = same_epoch ? *since : 0;
    std::uint64_t oldest_kept = window_.empty() ? seq_ + 1 : window_.front()->seq;
    r.gap = after + 1 < oldest_kept && after < seq_;
    for (auto& e : window_)
      if (e->seq > after) r.events.push_back(e);
  }
  sink_index_.emplace(sink.get(), sinks_.size());
  sinks_.push_back(std::move(sink));
  return r;
}

void event_bus::unsubscribe(const event_sink* sink) {
  // Swap with the last and pop: a linear erase made 10,000 streams closing at once quadratic.
  std::lock_guard lock(mutex_);
  auto it = sink_index_.find(sink);
  if (it == sink_index_.end()) return;
  std::size_t i = it->second;
  sink_index_.erase(it);
  if (i + 1 != sinks_.size()) {
    sinks_[i] = std::move(sinks_.back());
    sink_index_[sinks_[i].get()] = i;
  }
  sinks_.pop_back();
}

std::uint64_t event_bus::last_seq() const {
  std::lock_guard lock(mutex_);
  return seq_;
}

std::uint64_t event_bus::published() const { return last_seq(); }

}  // namespace quiesce::tasks
