#include "lifecycle/event_count.hpp"

#include "lifecycle/cancelled.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>

namespace quiesce::lifecycle {
namespace asio = boost::asio;

std::uint64_t event_count::prepare_wait() const {
  std::lock_guard lock(mutex_);
  return epoch_;
}

asio::awaitable<void> event_count::wait(std::uint64_t key) {
  auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor,
                                                    asio::steady_timer::time_point::max());
  {
    std::lock_guard lock(mutex_);
    if (epoch_ != key) co_return;
    waiters_.push_back(timer);
  }
  // The coroutine runs on its executor until it suspends here, so a cancel posted to that
  // executor by notify_all() always finds the wait started.
  co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  {
    std::lock_guard lock(mutex_);
    std::erase(waiters_, timer);
  }
  co_await throw_if_cancelled();
}

void event_count::notify_all() {
  std::vector<std::shared_ptr<asio::steady_timer>> woken;
  {
    std::lock_guard lock(mutex_);
    ++epoch_;
    woken.swap(waiters_);
  }
  for (auto& t : woken) asio::post(t->get_executor(), [t] { t->cancel(); });
}

void event_count::notify_one() {
  std::shared_ptr<asio::steady_timer> woken;
  {
    std::lock_guard lock(mutex_);
    ++epoch_;
    if (waiters_.empty()) return;
    woken = std::move(waiters_.back());
    waiters_.pop_back();
  }
  asio::post(woken->get_executor(), [woken] { woken->cancel(); });
}

}  // namespace quiesce::lifecycle
