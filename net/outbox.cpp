#include "net/outbox.hpp"

#include "lifecycle/cancelled.hpp"
#include "lifecycle/json_text.hpp"

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

bool outbox::push(frame f) {
  if (close_) return true;  // closing: nothing more goes out, and that is not an overflow
  if (waiting() >= limit_->frames()) {
    frames_.clear();
    head_ = 0;
    close_ = websocket::close_reason(websocket::close_code::try_again_later, "send queue full");
    wake();
    return false;
  }
  frames_.push_back(std::move(f));
  wake();
  return true;
}

void outbox::close(websocket::close_reason reason, frame last) {
  if (close_) return;
  if (last) frames_.push_back(std::move(last));
  close_ = std::move(reason);
  wake();
}

void outbox::wake() {
  if (std::exchange(writer_asleep_, false)) wake_.cancel();
}

asio::awaitable<outbox::item> outbox::next() {
  for (;;) {
    if (waiting() > 0) {
      item it{std::move(frames_[head_++]), std::nullopt};
      if (head_ == frames_.size()) {
        frames_.clear();
        head_ = 0;
      } else if (head_ >= 64 && head_ * 2 >= frames_.size()) {
        // A queue that never runs dry: drop the sent half, so it does not grow without end.
        frames_.erase(frames_.begin(), frames_.begin() + static_cast<std::ptrdiff_t>(head_));
        head_ = 0;
      }
      co_return it;
    }
    if (close_) co_return item{nullptr, close_};
    wake_.expires_at(asio::steady_timer::time_point::max());
    writer_asleep_ = true;
    co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    writer_asleep_ = false;                    // woken by cancellation from above, not by a push
    co_await lifecycle::throw_if_cancelled();  // the wait itself cannot tell
  }
}

}  // namespace quiesce::net
