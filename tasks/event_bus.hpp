// Task events, numbered with one strictly increasing `seq` per process (the epoch), kept in a
// bounded window for `?since=` replay, and handed to every stream in seq order.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace quiesce::tasks {

struct stream_event {
  std::uint64_t seq;
  std::string task_id;
  std::string text;  // the serialised JSON frame, shared by every stream
};
using event_ptr = std::shared_ptr<const stream_event>;

// A stream that receives events. deliver() is called with the bus locked, so it must only hand
// the event over (post it to the stream's strand), never block.
class event_sink {
 public:
  virtual ~event_sink() = default;
  virtual void deliver(event_ptr e) = 0;
};

class event_bus {
 public:
  event_bus(std::string epoch, std::size_t retention);

  void publish(std::string task_id, boost::json::object body);

  struct replay {
    std::vector<event_ptr> events;
    bool gap = false;  // some events the client asked for have left the window
    std::uint64_t last_seq = 0;
  };
  // Registers `sink` and returns what it missed, atomically: no event is both replayed and
  // delivered, none falls in between. `since` empty: live events only. `same_epoch` false: the
  // client numbered its events on another server, so it gets the whole window.
  replay subscribe(std::shared_ptr<event_sink> sink, std::optional<std::uint64_t> since,
                   bool same_epoch);
  void unsubscribe(const event_sink* sink);

  const std::string& epoch() const { return epoch_; }
  std::uint64_t last_seq() const;
  std::uint64_t published() const;

 private:
  const std::string epoch_;
  const std::size_t retention_;
  mutable std::mutex mutex_;
  std::uint64_t seq_ = 0;
  std::deque<event_ptr> window_;
  std::vector<std::shared_ptr<event_sink>> sinks_;                 // walked on every publish
  std::unordered_map<const event_sink*, std::size_t> sink_index_;  // O(1) unsubscribe
};

}  // namespace quiesce::tasks
