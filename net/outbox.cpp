#include "net/outbox.hpp"

#include "lifecycle/json_text.hpp"
#include "net/ws_frame.hpp"

#include <utility>

namespace quiesce::net {
namespace websocket = boost::beast::websocket;

frame make_frame(const boost::json::object& o) {
  return std::make_shared<const std::string>(lifecycle::json_text(o));
}

outbox::outbox(std::shared_ptr<const send_limit> limit) : limit_(std::move(limit)) {}

void outbox::begin_with(std::vector<frame> first) {
  frames_ = std::move(first);
  first_ = frames_.size();
  wake();
}

bool outbox::push(frame f) {
  if (close_) return true;  // closing: nothing more goes out, and that is not an overflow
  if (waiting() - first_ >= limit_->frames() || bytes_ >= limit_->bytes()) {
    frames_.clear();
    first_ = 0;
    bytes_ = 0;
    close_ = websocket::close_reason(websocket::close_code::try_again_later, "send queue full");
    wake();
    return false;
  }
  bytes_ += f->size();
  frames_.push_back(std::move(f));
  if (in_burst_)
    burst_pushed_ = true;
  else
    wake();
  return true;
}

void outbox::end_burst() {
  in_burst_ = false;
  if (std::exchange(burst_pushed_, false)) wake();
}

void outbox::close(websocket::close_reason reason, frame last) {
  if (close_) return;
  if (last) frames_.push_back(std::move(last));
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
  first_ = 0;
  bytes_ = 0;
  if (close_) {
    b.close = close_;
    close_taken_ = true;
  }
}

}  // namespace quiesce::net
