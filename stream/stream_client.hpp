// One connected client of the event stream: what it follows and what it still has to send.
// Everything here runs on the client's network thread, which its fanout (stream_fanout.hpp)
// runs on; only request_close() may be called from elsewhere.
#pragma once

#include "net/outbox.hpp"
#include "tasks/task_journal.hpp"

#include <boost/beast/websocket/rfc6455.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace quiesce::stream {

// What a stream queues for its wire (net/outbox.hpp), used throughout the stream.
using net::frame;
using net::framed_run;
using net::make_frame;
using net::outbox;
using net::queued;
using net::send_limit;

class stream_fanout;

// A fanout's batch as its clients take it: the events, oldest first, and their frames, made on
// first use and shared by every client that wants all of them.
class taken_batch {
 public:
  explicit taken_batch(const std::vector<tasks::event_ptr>& events);
  const std::vector<tasks::event_ptr>& events() const { return events_; }
  // The lowest seq of the batch: a client that has seen less wants every event of it (in seq
  // order, as the bus hands them over, this is the first; not relied on).
  std::uint64_t lowest_seq() const { return lowest_seq_; }
  const std::shared_ptr<const framed_run>& run();

 private:
  const std::vector<tasks::event_ptr>& events_;
  std::uint64_t lowest_seq_ = 0;
  std::shared_ptr<const framed_run> run_;
};

class stream_client final : public std::enable_shared_from_this<stream_client> {
 public:
  stream_client(std::shared_ptr<stream_fanout> fanout, std::string id,
                std::shared_ptr<const send_limit> limit);

  // Any thread: after what the fanout was handed before this call, sends `last` (if any) and
  // closes. The first close wins.
  void request_close(boost::beast::websocket::close_reason reason, frame last);

  // The client's thread only:
  outbox& out() { return out_; }
  // Queues the events of `batch` this client wants, as one burst (one write): the batch's
  // shared frames if it wants them all and they fit, else each event's text.
  void take(taken_batch& batch);
  void follow_all() {
    follow_all_ = true;
    follows_.clear();
  }
  void follow(std::set<std::string> ids) {
    follow_all_ = false;
    follows_ = std::move(ids);
  }
  bool wants(const tasks::stream_event& e) const {
    return e.seq > seen_ && (follow_all_ || e.task_id.empty() || follows_.contains(e.task_id));
  }
  // Events up to `seq` are not for this client: it has them from its replay, or saw them on
  // another replica that had read further than this one.
  void seen_through(std::uint64_t seq) { seen_ = seq; }
  const std::string& id() const { return id_; }
  stream_fanout& fanout() { return *fanout_; }
  std::function<void()> on_overflow;

 private:
  friend class stream_fanout;
  std::shared_ptr<stream_fanout> fanout_;
  std::string id_;
  outbox out_;
  bool follow_all_ = true;
  std::uint64_t seen_ = 0;
  std::set<std::string> follows_;
  std::size_t slot_ = std::numeric_limits<std::size_t>::max();  // in the fanout's list
};

}  // namespace quiesce::stream
