#include "lifecycle/event_count.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace quiesce::lifecycle {
namespace asio = boost::asio;

template <typename Handler>
struct event_count::waiter_for final : event_count::waiter {
  explicit waiter_for(Handler h) : handler(std::move(h)) {}
  void complete(boost::system::error_code ec) override {
    slot.clear();  // the cancellation handler points at this wait, which ends now
    auto h = std::move(handler);
    std::move(h)(ec);
  }
  Handler handler;
};

std::uint64_t event_count::prepare_wait() const {
  std::lock_guard lock(mutex_);
  return epoch_;
}

asio::awaitable<void> event_count::wait(std::uint64_t key) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(boost::system::error_code)>(
      [this, key](auto handler) { start_wait(key, std::move(handler)); }, asio::use_awaitable);
}

// On the waiter's executor, as its coroutine suspends.
template <typename Handler>
void event_count::start_wait(std::uint64_t key, Handler handler) {
  auto w = std::make_shared<waiter_for<Handler>>(std::move(handler));
  w->executor = asio::get_associated_executor(w->handler);
  if (auto slot = asio::get_associated_cancellation_slot(w->handler); slot.is_connected()) {
    w->slot = slot;
    slot.assign([this, raw = w.get()](asio::cancellation_type) {
      if (auto mine = take(raw)) resume(std::move(mine), asio::error::operation_aborted);
    });
  }
  {
    std::lock_guard lock(mutex_);
    if (epoch_ == key) {
      waiters_.push_back(std::move(w));
      return;
    }
  }
  resume(std::move(w), {});  // notified since `key`: never inline, as an initiation must not
}

std::shared_ptr<event_count::waiter> event_count::take(const waiter* w) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(waiters_.begin(), waiters_.end(), [w](auto& p) { return p.get() == w; });
  if (it == waiters_.end()) return nullptr;
  auto mine = std::move(*it);
  waiters_.erase(it);
  return mine;
}

void event_count::resume(std::shared_ptr<waiter> w, boost::system::error_code ec) {
  auto executor = w->executor;
  asio::post(executor, [w = std::move(w), ec] { w->complete(ec); });
}

void event_count::notify_all() {
  std::vector<std::shared_ptr<waiter>> woken;
  {
    std::lock_guard lock(mutex_);
    ++epoch_;
    woken.swap(waiters_);
  }
  for (auto& w : woken) resume(std::move(w), {});
}

void event_count::notify_one() {
  std::shared_ptr<waiter> woken;
  {
    std::lock_guard lock(mutex_);
    ++epoch_;
    if (waiters_.empty()) return;
    woken = std::move(waiters_.back());
    waiters_.pop_back();
  }
  resume(std::move(woken), {});
}

}  // namespace quiesce::lifecycle
