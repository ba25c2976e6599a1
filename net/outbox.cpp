#include "net/outbox.hpp"

#include "net/ws_frame.hpp"
#include "support/json_text.hpp"

#include <utility>

namespace quiesce::net {
namespace websocket = boost::beast::websocket;

frame make_frame(const boost::json::object& o) {
  return std::make_shared<const std::string>(support::json_text(o));
}

outbox::outbox(std::shared_ptr<const send_limit> limit) : limit_(std::move(limit)) {}

void outbox::begin_with(std::vector<queued> first) {
  frames_ = std::move(first);  // one text each
  first_ = waiting_ = frames_.size();
  wake();
}

bool outbox::push(frame f) {
  if (close_) return true;  // closing: nothing more goes out, and that is not an overflow
  if (waiting() - first_ >= limit_->frames() || bytes_ >= limit_->bytes()) {
    frames_.clear();
    waiting_ = first_ = 0;
    bytes_ = 0;
    close_ = websocket::close_reason(websocket::close_code::try_again_later, "send queue full");
    wake();
    return false;
  }
  bytes_ += f->size();
  frames_.emplace_back(std::move(f));
  ++waiting_;
  pushed();
  return true;
}

// Room for every frame of the run, by the test push() makes before each (a frame is refused
// once the queue holds the limit): frames through the last, bytes through the one before it.
// Stricter on bytes by the last text, which only sends that run frame by frame.
bool outbox::has_room_for(const framed_run& run) const {
  if (close_) return true;
  return waiting() - first_ + run.frames <= limit_->frames() &&
         bytes_ + run.text_bytes < limit_->bytes();
}

void outbox::push(const std::shared_ptr<const framed_run>& run) {
  if (close_) return;
  bytes_ += run->text_bytes;
  waiting_ += run->frames;
  frames_.emplace_back(run);
  pushed();
}

void outbox::end_burst() {
  in_burst_ = false;
  if (std::exchange(burst_pushed_, false)) wake();
}

void outbox::close(websocket::close_reason reason, frame last) {
  if (close_) return;
  if (last) {
    frames_.emplace_back(std::move(last));
    ++waiting_;
  }
  close_ = std::move(reason);
  wake();
}

void outbox::pong(std::string_view payload) {
  if (close_taken_) return;
  pong_ = ws::control_frame(ws::opcode::pong, payload);
  wake();
}

void outbox::ping() {
  ping_ = true;
  wake();
}

// After a push: the writer is told now, or at the end of the burst.
void outbox::pushed() {
  if (in_burst_)
    burst_pushed_ = true;
  else
    wake();
}

// Last in every change above: the writer may take everything before this returns.
void outbox::wake() {
  if (ready_ && ready()) ready_();
}

void outbox::take(batch& b) {
  b.control.clear();
  b.frames.clear();
  b.close.reset();
  if (close_taken_) return;
  b.control.swap(pong_);
  if (std::exchange(ping_, false)) b.control += ws::control_frame(ws::opcode::ping, {});
  b.frames.swap(frames_);
  waiting_ = first_ = 0;
  bytes_ = 0;
  if (close_) {
    b.close = close_;
    close_taken_ = true;
  }
}

}  // namespace quiesce::net
