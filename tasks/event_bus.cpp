#include "tasks/event_bus.hpp"

#include "support/json_text.hpp"

#include <algorithm>

namespace quiesce::tasks {

event_bus::event_bus(std::string epoch, std::size_t retention, std::uint64_t last_seq,
                     std::vector<event_ptr> window)
    : epoch_(std::move(epoch)),
      retention_(std::max<std::size_t>(retention, 1)),
      seq_(last_seq),
      delivered_(last_seq),
      settled_(last_seq) {
  for (auto& e : window) window_.push_back(std::move(e));
  while (window_.size() > retention_) window_.pop_front();
}

event_ptr event_bus::stamp(std::string task_id, std::string open_body) {
  ++seq_;
  ++published_;
  close_with_seq(open_body, seq_);
  return std::make_shared<const stream_event>(
      stream_event{seq_, std::move(task_id), std::move(open_body)});
}

void event_bus::deliver_locked(const event_ptr& e) {
  window_.push_back(e);
  if (window_.size() > retention_) window_.pop_front();
  delivered_ = e->seq;
  // Delivering under the lock is what keeps seq increasing on every stream.
  for (auto& s : sinks_) s->deliver(e);
}

void event_bus::publish(const task_record& t, std::string open_body,
                        std::function<void(bool)> on_stored) {
  {
    std::lock_guard lock(mutex_);
    auto e = stamp(t.id, std::move(open_body));
    if (journal_) {
      // Appended under the lock, so the journal sees events in seq order.
      journal_->append({t, std::move(e), std::move(on_stored)});
      return;
    }
    deliver_locked(e);
    settled_ = e->seq;
  }
  settled_changed_.notify_all();
  // Outside the lock: the admission it completes takes the service's lock, which is held
  // around other publishes.
  if (on_stored) on_stored(true);
}

void event_bus::publish(std::string task_id, const boost::json::object& body) {
  task_record t;
  t.id = std::move(task_id);
  auto text = support::json_text(body);
  text.pop_back();  // the closing brace: stamp() adds "seq" first
  publish(t, std::move(text));
}

void event_bus::deliver(const std::vector<event_ptr>& stored, std::uint64_t settled) {
  {
    std::lock_guard lock(mutex_);
    for (auto& e : stored) deliver_locked(e);
    settled_ = std::max(settled_, settled);
  }
  settled_changed_.notify_all();
}

void event_bus::expect(std::uint64_t seq) {
  std::lock_guard lock(mutex_);
  seq_ = std::max(seq_, seq);
}

boost::asio::awaitable<void> event_bus::flush() {
  std::uint64_t target = 0;
  {
    std::lock_guard lock(mutex_);
    target = seq_;
  }
  co_await settled_changed_.wait_until([this, target] {
    std::lock_guard lock(mutex_);
    return settled_ >= target;
  });
}

event_bus::replay event_bus::subscribe(std::shared_ptr<event_sink> sink,
                                       std::optional<std::uint64_t> since, bool same_epoch) {
  std::lock_guard lock(mutex_);
  auto r = replay_locked(since, same_epoch);
  sink_index_.emplace(sink.get(), sinks_.size());
  sinks_.push_back(std::move(sink));
  return r;
}

event_bus::replay event_bus::replay_from(std::optional<std::uint64_t> since,
                                         bool same_epoch) const {
  std::lock_guard lock(mutex_);
  return replay_locked(since, same_epoch);
}

event_bus::replay event_bus::replay_locked(std::optional<std::uint64_t> since,
                                           bool same_epoch) const {
  replay r;
  r.last_seq = delivered_;
  if (since || !same_epoch) {
    std::uint64_t after = same_epoch ? *since : 0;
    std::uint64_t oldest_kept = window_.empty() ? delivered_ + 1 : window_.front()->seq;
    r.gap = after + 1 < oldest_kept && after < delivered_;
    for (auto& e : window_)
      if (e->seq > after) r.events.push_back(e);
  }
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

bool event_bus::settled() const {
  std::lock_guard lock(mutex_);
  return settled_ >= seq_;
}

std::uint64_t event_bus::last_seq() const {
  std::lock_guard lock(mutex_);
  return delivered_;
}

std::uint64_t event_bus::published() const {
  std::lock_guard lock(mutex_);
  return published_;
}

void close_with_seq(std::string& open_body, std::uint64_t seq) {
  if (open_body.size() > 1) open_body += ',';  // "{" alone: an object with no keys yet
  open_body += "\"seq\":";
  open_body += std::to_string(seq);
  open_body += '}';
}

boost::json::object gap_message(const std::string& epoch) {
  return {{"type", "gap"}, {"epoch", epoch}};
}

}  // namespace quiesce::tasks
