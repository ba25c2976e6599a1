// Task events, numbered with one strictly increasing `seq` per epoch, kept in a bounded window
// for `?since=` replay, and handed to every stream in seq order. Without a journal an event is
// delivered as it is published; with one (the durable store), once the journal has stored it.
#pragma once

#include "lifecycle/event_count.hpp"
#include "support/adaptive_mutex.hpp"
#include "tasks/task_journal.hpp"

#include <boost/asio/awaitable.hpp>
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

// A stream that receives events. deliver() is called with the bus locked, so it must only hand
// the event over (queue it for the stream's strand), never block or wait for the strand.
class event_sink {
 public:
  virtual ~event_sink() = default;
  virtual void deliver(event_ptr e) = 0;
};

class event_bus {
 public:
  // `last_seq` and `window`: what a durable store kept from earlier processes of this epoch.
  event_bus(std::string epoch, std::size_t retention, std::uint64_t last_seq = 0,
            std::vector<event_ptr> window = {});

  // From then on every event goes through `j` before delivery. Set before the first publish.
  void attach(task_journal& j) { journal_ = &j; }

  // An event about task `t` (its state after the change): `open_body` is the text of a JSON
  // object without its closing brace (open_task_text()); the bus adds "seq" and closes it.
  // `on_stored` (admissions) is told whether it was stored; without a journal at once, after
  // the bus's lock is released.
  void publish(const task_record& t, std::string open_body,
               std::function<void(bool stored)> on_stored = {});
  // An event about a task known only by its id (tests of the bus, which attach no journal).
  void publish(std::string task_id, const boost::json::object& body);

  // The journal's answer: `stored` events go out in seq order; every seq up to `settled` is
  // either among them or was dropped (a refused admission).
  void deliver(const std::vector<event_ptr>& stored, std::uint64_t settled);
  // An event numbered elsewhere (the shared store's database) that flush() must wait for.
  void expect(std::uint64_t seq);
  // Completes once every event published before the call is delivered or dropped: the drain
  // awaits it so that streams close only after their last events.
  boost::asio::awaitable<void> flush();
  bool settled() const;  // nothing published is waiting for the journal

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
  // The replay alone, for a client of a sink that is subscribed already (a network thread's
  // fanout): the events after `last_seq` are that sink's, the client skips those up to it.
  replay replay_from(std::optional<std::uint64_t> since, bool same_epoch) const;
  void unsubscribe(const event_sink* sink);

  const std::string& epoch() const { return epoch_; }
  std::uint64_t last_seq() const;  // the last delivered
  std::uint64_t published() const;

 private:
  event_ptr stamp(std::string task_id, std::string open_body);  // under mutex_
  replay replay_locked(std::optional<std::uint64_t> since, bool same_epoch) const;
  void deliver_locked(const event_ptr& e);

  const std::string epoch_;
  const std::size_t retention_;
  task_journal* journal_ = nullptr;
  mutable support::adaptive_mutex mutex_;
  std::uint64_t seq_ = 0;        // the last stamped
  std::uint64_t delivered_ = 0;  // the last delivered
  std::uint64_t settled_ = 0;    // every seq up to it delivered or dropped
  std::uint64_t published_ = 0;  // events published by this process
  lifecycle::event_count settled_changed_;
  std::deque<event_ptr> window_;
  std::vector<std::shared_ptr<event_sink>> sinks_;                 // walked on every publish
  std::unordered_map<const event_sink*, std::size_t> sink_index_;  // O(1) unsubscribe
};

// Adds "seq" to the text of an object without its closing brace, and closes it.
void close_with_seq(std::string& open_body, std::uint64_t seq);

// The frame that tells a stream some events are lost to it (replay past the window, or a
// replica that could not read the shared stream): the client re-reads task state over HTTP.
boost::json::object gap_message(const std::string& epoch);

}  // namespace quiesce::tasks
