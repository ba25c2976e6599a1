// The bus's one sink for every stream on one network thread. The bus hands an event to each
// thread once (a lock and, at most, one post per batch), not to each of its streams: the
// thread then gives the batch to its streams in turn, each as one burst. A sink per stream held
// the bus's lock for a lock and a post per stream per event (bench/HISTORY.md).
//
// A take waits `hold` after the first event of a batch, so that what follows close behind it
// joins the batch: a zero-second task's three events were three writes to each client, as the
// worker that makes them runs between takes on the same thread (bench/HISTORY.md). Nothing is
// dropped or reordered; the first event is only that much later.
//
// Closes come through the same inbox, behind the events handed over before them: posts to a
// network thread's io_context are not ordered between threads (docs/development.md), and a
// close posted on its own could overtake a task's last event.
#pragma once

#include "net/outbox.hpp"
#include "stream/stream_client.hpp"
#include "tasks/event_bus.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

namespace quiesce::stream {

class stream_client;

class stream_fanout final : public tasks::event_sink,
                            public std::enable_shared_from_this<stream_fanout> {
 public:
  // `thread`: the executor every client of this fanout runs on (one thread runs it). `hold`:
  // how long a take gathers before it hands over (0: the take runs when the thread gets to it).
  stream_fanout(boost::asio::any_io_executor thread, std::chrono::microseconds hold = {})
      : thread_(std::move(thread)), hold_(hold), timer_(thread_) {}

  const boost::asio::any_io_executor& executor() const { return thread_; }

  void deliver(tasks::event_ptr e) override;  // any thread (the bus, under its lock)
  void request_close(std::shared_ptr<stream_client> c, boost::beast::websocket::close_reason reason,
                     frame last);  // any thread

  // The thread only. A client added here gets every event taken from now on that it wants:
  // with the bus's replay up to `last_seq`, mark it seen_through(last_seq) first. Every add has
  // its remove (the stream's end): until then the fanout and the client hold each other.
  void add(const std::shared_ptr<stream_client>& c);
  void remove(stream_client& c);
  std::size_t size() const { return clients_.size(); }

 private:
  struct close_request {
    std::shared_ptr<stream_client> client;
    boost::beast::websocket::close_reason reason;
    frame last;
  };
  void post_take();       // under mutex_, when no take is due yet
  void hold_then_take();  // the thread
  void take();            // the thread

  boost::asio::any_io_executor thread_;
  std::chrono::microseconds hold_;
  boost::asio::steady_timer timer_;  // the thread only
  std::mutex mutex_;
  std::vector<tasks::event_ptr> inbox_;  // handed over, not yet taken by the thread
  std::vector<close_request> closes_;    // applied after the events taken with them
  bool take_posted_ = false;             // under mutex_

  // The thread only.
  std::vector<tasks::event_ptr> taking_;  // trades capacity with inbox_: no allocation per batch
  std::vector<close_request> closing_;
  std::vector<std::shared_ptr<stream_client>> clients_;
  bool taking_now_ = false;  // add() and remove() never run inside take() (asserted)
};

}  // namespace quiesce::stream
