// What a stream still has to send: a bounded queue of frames, then at most one close.
// Used only on its stream's strand. Overflow never skips silently: it becomes a 1013 close.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json/object.hpp>

#include <deque>
#include <memory>
#include <optional>
#include <string>

namespace quiesce::net {

using frame = std::shared_ptr<const std::string>;
frame make_frame(const boost::json::object& o);  // one text frame: the object serialised

class outbox {
 public:
  struct item {
    frame text;                                                  // a frame to send, or
    std::optional<boost::beast::websocket::close_reason> close;  // the close to send last
  };

  outbox(boost::asio::any_io_executor executor, std::size_t limit);

  // Queues a frame; false when the queue overflowed (the stream is then closed 1013).
  bool push(frame f);
  // Sends `last` (if any) after everything queued, then closes. The first close wins.
  void close(boost::beast::websocket::close_reason reason, frame last = nullptr);
  bool closing() const { return close_.has_value(); }
  // The next item, waiting if there is none yet.
  boost::asio::awaitable<item> next();

 private:
  std::size_t limit_;
  std::deque<frame> frames_;
  std::optional<boost::beast::websocket::close_reason> close_;
  boost::asio::steady_timer wake_;  // never expires; cancel() wakes next()
};

}  // namespace quiesce::net
