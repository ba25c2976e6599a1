// Every open event stream, so the drain can tell each one `draining` and close it 1012.
#pragma once

#include "lifecycle/event_count.hpp"
#include "net/outbox.hpp"
#include "stream/stream_client.hpp"
#include "stream/stream_fanout.hpp"
#include "tasks/event_bus.hpp"

#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

namespace quiesce::stream {

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
  std::chrono::microseconds batch_window{};   // a fanout's hold (stream_fanout.hpp says why)
  std::string pod;                            // the hello frame's
  std::string pod_namespace;
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

  // The fanout of the network thread `thread`, made and put on the bus the first time. It stays
  // there for the hub's life: `thread` is one of a few executors (a network thread's io_context
  // executor, app/network_threads.hpp), never a strand made per connection.
  std::shared_ptr<stream_fanout> fanout_for(const boost::asio::any_io_executor& thread);

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
  std::vector<std::shared_ptr<stream_fanout>> fanouts_;  // one per network thread
  bool closing_ = false;
  lifecycle::event_count changed_;
  std::atomic<std::uint64_t> dropped_slow_{0}, opened_total_{0}, sent_{0};
};

}  // namespace quiesce::stream
