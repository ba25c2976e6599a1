#include "net/outbox.hpp"

#include "lifecycle/cancelled.hpp"
#include "lifecycle/json_text.hpp"
#include "net/ws_frame.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <utility>

namespace quiesce::net {
namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;

frame make_frame(const boost::json::object& o) {
  return std::make_shared<const std::string>(lifecycle::json_text(o));
}

outbox::outbox(asio::any_io_executor executor, std::shared_ptr<const send_limit> limit)
    : limit_(std::move(limit)), wake_(executor, asio::steady_timer::time_point::max()) {}

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
  if (!std::exchange(burst_pushed_, false)) return;
  if (direct_ && writer_asleep_ && !close_ && pong_.empty() && !ping_ && rest_.empty()) {
    direct_(frames_, rest_);
    frames_.clear();
    bytes_ = 0;
    if (rest_.empty()) return;  // all of it is out: the writer sleeps on
  }
  wake();
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

void outbox::wake() {
  if (std::exchange(writer_asleep_, false)) wake_.cancel();
}

asio::awaitable<void> outbox::next(batch& b) {
  b.rest.clear();
  b.control.clear();
  b.frames.clear();
  b.close.reset();
  while (close_taken_ || !ready()) {
    wake_.expires_at(asio::steady_timer::time_point::max());
    writer_asleep_ = true;
    co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    writer_asleep_ = false;                    // woken by cancellation from above, not by a push
    co_await lifecycle::throw_if_cancelled();  // the wait itself cannot tell
  }
  b.rest.swap(rest_);
  b.control.swap(pong_);
  if (std::exchange(ping_, false)) b.control += ws::control_frame(ws::opcode::ping, {});
  b.frames.swap(frames_);  // the two vectors trade capacity: no allocation per batch
  first_ = 0;
  bytes_ = 0;
  if (close_) {
    b.close = close_;
    close_taken_ = true;
  }
}

}  // namespace quiesce::net
