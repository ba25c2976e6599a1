// What a stream still has to send: a bounded queue of frames, then at most one close.
// Used only on its stream's strand. Overflow never skips silently: it becomes a 1013 close.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace quiesce::net {

using frame = std::shared_ptr<const std::string>;
frame make_frame(const boost::json::object& o);  // one text frame: the object serialised

// How many frames one stream may have queued, shared by every stream of a server. A client that
// falls this far behind is slow, unless the server itself made the burst: at the deadline every
// unfinished task ends at once, at most one event each, and the drain allows for that.
class send_limit {
 public:
  explicit send_limit(std::size_t frames) : frames_(frames) {}
  std::size_t frames() const { return frames_ + burst_.load(std::memory_order_acquire); }
  // Any thread, before the events of the burst are published.
  void allow_burst(std::size_t frames) { burst_.store(frames, std::memory_order_release); }

 private:
  const std::size_t frames_;
  std::atomic<std::size_t> burst_{0};
};

class outbox {
 public:
  struct item {
    frame text;                                                  // a frame to send, or
    std::optional<boost::beast::websocket::close_reason> close;  // the close to send last
  };

  outbox(boost::asio::any_io_executor executor, std::shared_ptr<const send_limit> limit);

  // Queues a frame; false when the queue overflowed (the stream is then closed 1013).
  bool push(frame f);
  // Sends `last` (if any) after everything queued, then closes. The first close wins.
  void close(boost::beast::websocket::close_reason reason, frame last = nullptr);
  bool closing() const { return close_.has_value(); }
  std::size_t waiting() const { return frames_.size() - head_; }  // frames; the close not counted
  // The next item, waiting if there is none yet.
  boost::asio::awaitable<item> next();

 private:
  void wake();

  std::shared_ptr<const send_limit> limit_;
  // A queue as a vector and the index of its front: unlike std::deque, an empty one allocates
  // nothing (a deque takes about 600 bytes at once, for every idle stream).
  std::vector<frame> frames_;
  std::size_t head_ = 0;
  std::optional<boost::beast::websocket::close_reason> close_;
  boost::asio::steady_timer wake_;  // never expires; cancel() wakes next()
  bool writer_asleep_ = false;      // next() is waiting: the first push of a batch wakes it
};

}  // namespace quiesce::net
