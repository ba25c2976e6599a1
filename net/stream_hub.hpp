// Every open event stream, so the drain can tell each one `draining` and close it 1012.
#pragma once

#include "lifecycle/event_count.hpp"
#include "net/outbox.hpp"
#include "tasks/event_bus.hpp"

#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

namespace quiesce::net {

// Filled from the configuration (app/settings.cpp; every default is in app/config.hpp).
struct stream_settings {
  // Past either, the client is closed 1013 (send_limit, outbox.hpp).
  std::size_t send_queue_limit{};       // frames waiting
  std::size_t send_queue_byte_limit{};  // bytes of frames waiting
  std::size_t message_limit{};          // largest frame a client may send
  // Kernel send buffer per stream (SO_SNDBUF). Bounds what a stalled client pins in kernel
  // memory; past it, frames wait in the outbox and then the client is closed 1013.
  std::size_t send_buffer{};
  std::chrono::milliseconds ping_interval{};  // dead peers are dropped after twice this
  std::chrono::milliseconds close_timeout{};  // close handshake wait
  std::string pod;                            // the hello frame's
  std::string pod_namespace;
};

// One connected client: the bus delivers to it; its strand owns the outbox and the filter.
// Deliveries gather in an inbox, and the strand is posted to only when it is not already due to
// take it: a client that is behind takes a whole burst in one hop, not one post per event.
// A close requested from another thread goes through the same inbox, behind what was delivered
// before it: posts to an io_context are not ordered (one made by a handler on the client's own
// thread is queued only when that handler returns), so a close posted on its own could overtake
// a task's last event and drop it.
class stream_client final : public tasks::event_sink,
                            public std::enable_shared_from_this<stream_client> {
 public:
  stream_client(boost::asio::any_io_executor strand, std::string id,
                std::shared_ptr<const send_limit> limit);

  void deliver(tasks::event_ptr e) override;                                     // any thread
  void request_close(boost::beast::websocket::close_reason reason, frame last);  // any thread

  // Strand only:
  outbox& out() { return out_; }
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
  // The client saw events up to `seq` on another replica that had read further than this one:
  // those come here later and are not sent twice.
  void seen_through(std::uint64_t seq) { seen_ = seq; }
  const std::string& id() const { return id_; }
  boost::asio::any_io_executor executor() const { return strand_; }
  std::function<void()> on_overflow;

 private:
  void take_inbox();  // strand

  boost::asio::any_io_executor strand_;
  std::string id_;
  std::mutex inbox_mutex_;
  std::vector<tasks::event_ptr> inbox_;  // delivered, not yet taken by the strand
  struct close_request {
    boost::beast::websocket::close_reason reason;
    frame last;
  };
  std::optional<close_request> close_requested_;  // under inbox_mutex_: after inbox_
  bool take_posted_ = false;                      // under inbox_mutex_
  std::vector<tasks::event_ptr> taking_;          // strand: the batch being moved to the outbox
  outbox out_;
  bool follow_all_ = true;
  std::uint64_t seen_ = 0;
  std::set<std::string> follows_;
};

class stream_hub {
 public:
  stream_hub(stream_settings settings, tasks::event_bus& bus);

  const stream_settings& settings() const { return settings_; }
  std::shared_ptr<const send_limit> limit() const { return limit_; }
  // The deadline is about to end up to `frames` tasks at once: each stream may queue that many
  // more frames, bytes not counted, so the server's own burst does not close fast clients 1013
  // (docs/api.md).
  void allow_burst(std::size_t frames) { limit_->allow_burst(frames); }
  tasks::event_bus& bus() { return bus_; }

  // False once the hub is closing: the caller closes the new stream 1012 itself.
  bool add(const std::shared_ptr<stream_client>& c);
  void remove(const std::shared_ptr<stream_client>& c);

  // Tells every stream `draining` after what it still has to send, closes it 1012 (spread
  // over `spread`), and completes when all are gone or the close timeout has passed.
  boost::asio::awaitable<void> close_all(std::chrono::milliseconds spread);
  frame draining_frame() const;

  std::size_t open() const;
  std::uint64_t dropped_slow() const { return dropped_slow_.load(); }
  std::uint64_t opened_total() const { return opened_total_.load(); }
  void count_dropped_slow() { ++dropped_slow_; }
  std::uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }
  void count_sent(std::size_t frames) { sent_.fetch_add(frames, std::memory_order_relaxed); }

 private:
  stream_settings settings_;
  tasks::event_bus& bus_;
  std::shared_ptr<send_limit> limit_;
  mutable std::mutex mutex_;
  std::unordered_set<std::shared_ptr<stream_client>> clients_;
  bool closing_ = false;
  lifecycle::event_count changed_;
  std::atomic<std::uint64_t> dropped_slow_{0}, opened_total_{0}, sent_{0};
};

}  // namespace quiesce::net
