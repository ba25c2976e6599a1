// What a stream still has to send: a bounded queue of frames, then at most one close.
// Used only on its stream's strand. Overflow never skips silently: it becomes a 1013 close.
#pragma once

#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quiesce::net {

using frame = std::shared_ptr<const std::string>;
frame make_frame(const boost::json::object& o);  // one text frame: the object serialised

// Messages framed once for every stream that sends all of them (stream_fanout's batch): server
// frames are unmasked and no extension is offered, so their bytes are the same for each client.
struct framed_run {
  std::string bytes;           // whole text frames, headers included
  std::size_t frames = 0;      // how many
  std::size_t text_bytes = 0;  // of their texts alone: what the send limit counts
};

// One entry of a stream's queue: a message's text, which the wire frames, or a framed run.
struct queued {
  queued(frame text) : bytes(std::move(text)) {}  // NOLINT(google-explicit-constructor)
  explicit queued(const std::shared_ptr<const framed_run>& run)
      : bytes(run, &run->bytes), frames(run->frames), framed(true) {}
  frame bytes;
  std::size_t frames = 1;
  bool framed = false;  // `bytes` are whole frames
};

// How far one stream may fall behind, shared by every stream of a server: so many frames or so
// many bytes of them waiting, whichever comes first. Bytes decide for event frames; the frame
// count bounds the queue itself when frames are tiny. A client that falls this far behind is
// slow, unless the server itself made the burst: at the deadline every unfinished task ends at
// once, at most one event each, and the drain allows for that.
class send_limit {
 public:
  static constexpr std::size_t no_byte_limit = SIZE_MAX;
  explicit send_limit(std::size_t frames, std::size_t bytes = no_byte_limit)
      : frames_(frames), bytes_(bytes) {}
  std::size_t frames() const { return frames_ + burst_.load(std::memory_order_acquire); }
  // The deadline's burst is counted in frames; while it is allowed, bytes do not limit.
  std::size_t bytes() const {
    return burst_.load(std::memory_order_acquire) > 0 ? no_byte_limit : bytes_;
  }
  // Any thread, before the events of the burst are published.
  void allow_burst(std::size_t frames) { burst_.store(frames, std::memory_order_release); }

 private:
  const std::size_t frames_;
  const std::size_t bytes_;
  std::atomic<std::size_t> burst_{0};
};

class outbox {
 public:
  // Everything there was to send when the writer took it, in the order it goes out.
  struct batch {
    std::string control;  // a pong and a ping, whole frames (ws_frame.hpp)
    std::vector<queued> frames;
    std::optional<boost::beast::websocket::close_reason> close;  // last; nothing follows it
  };

  explicit outbox(std::shared_ptr<const send_limit> limit);

  // The writer (the wire) is told here each time there is something new to take; it takes it
  // at once, or after the write it has in progress. Strand only, like everything below.
  void on_ready(std::function<void()> ready) { ready_ = std::move(ready); }

  // The stream's first frames (hello, gap, replay), before anything is pushed. The replay is
  // bounded by the retention window, not by the limit: that is for live events a client falls
  // behind on.
  void begin_with(std::vector<queued> first);
  // Queues a frame; false when the queue overflowed (the stream is then closed 1013).
  bool push(frame f);
  // Whether `run` can be queued whole without reaching the limit; if not, push its texts one by
  // one, and the limit decides as it would have for them.
  bool has_room_for(const framed_run& run) const;
  // Queues a run that has_room_for() accepted.
  void push(const std::shared_ptr<const framed_run>& run);
  // Frames pushed between these two are one burst (the events a client's strand took at once):
  // the writer is told at its end, so the whole burst goes out in one write.
  void begin_burst() { in_burst_ = true; }
  void end_burst();
  // Sends `last` (if any) after everything queued, then closes. The first close wins.
  void close(boost::beast::websocket::close_reason reason, frame last = nullptr);
  bool closing() const { return close_.has_value(); }
  // The answer to the peer's latest ping (an earlier unanswered one needs none), and a ping of
  // ours. Neither counts against the limit.
  void pong(std::string_view payload);
  void ping();
  std::size_t waiting() const { return waiting_; }      // frames; the close not counted
  std::size_t waiting_bytes() const { return bytes_; }  // of the frames push() queued
  // There is something to take; never again once the close was taken.
  bool ready() const {
    return !close_taken_ && (!frames_.empty() || close_ || !pong_.empty() || ping_);
  }
  // Moves everything there is to send into `b` (whose vectors trade capacity with the queue's:
  // nothing is allocated per batch).
  void take(batch& b);

 private:
  void pushed();
  void wake();

  std::shared_ptr<const send_limit> limit_;
  std::vector<queued> frames_;  // unlike std::deque, an empty vector allocates nothing
  std::size_t waiting_ = 0;     // frames in them
  std::size_t first_ = 0;       // how many of them begin_with() gave, not counted by the limit
  std::size_t bytes_ = 0;       // of the frames after those
  std::optional<boost::beast::websocket::close_reason> close_;
  bool close_taken_ = false;  // the writer has it: nothing more is ever taken
  std::string pong_;          // a whole pong frame, or empty
  bool ping_ = false;
  bool in_burst_ = false;
  bool burst_pushed_ = false;  // a frame came during the burst
  std::function<void()> ready_;
};

}  // namespace quiesce::net
