#include "lifecycle/event_count.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/intrusive/list.hpp>

#include <algorithm>
#include <mutex>
#include <optional>

namespace quiesce::lifecycle {
namespace asio = boost::asio;

// The suspended waiters of one execution context. Shared with each of them, so that a waiter
// that outlives the context (its event_count does) can still ask whether it is listed.
struct event_count::parking {
  std::mutex mutex;
  boost::intrusive::list<waiter,
                         boost::intrusive::member_hook<waiter, waiter::hook, &waiter::listed>>
      list;
  bool closed = false;  // the context shut down: nothing is listed, or resumed, any more

  bool park(waiter& w) {
    std::lock_guard lock(mutex);
    if (closed) return false;
    list.push_back(w);
    return true;
  }
  // False if it was not listed: its context has shut down (or it was never parked).
  bool unpark(waiter& w) {
    std::lock_guard lock(mutex);
    if (!w.listed.is_linked()) return false;
    list.erase(list.iterator_to(w));
    return true;
  }
  // The context's shutdown: every waiter still suspended is destroyed unrun. Each is kept alive
  // while its handler goes, since the coroutine it ends may own the event_count that holds it.
  void close() {
    std::vector<std::shared_ptr<waiter>> abandoned;
    {
      std::lock_guard lock(mutex);
      closed = true;
      // One whose last owner is dropping it now is unlinked too, and its unpark finds nothing.
      for (auto& w : list)
        if (auto alive = w.weak_from_this().lock()) abandoned.push_back(std::move(alive));
      list.clear();
    }
    for (auto& w : abandoned) w->abandon();
  }
};

// Finds a context's parking, and closes it as the context shuts down.
class event_count::parking_service final : public asio::execution_context::service {
 public:
  static inline asio::execution_context::id id;
  explicit parking_service(asio::execution_context& context) : service(context) {}
  std::shared_ptr<parking> waiters = std::make_shared<parking>();

 private:
  void shutdown() override { waiters->close(); }
};

event_count::waiter::~waiter() {
  if (parked_at) parked_at->unpark(*this);
}

template <typename Handler>
struct event_count::waiter_for final : event_count::waiter {
  explicit waiter_for(Handler h) : handler(std::move(h)) {}
  void complete(boost::system::error_code ec) override {
    slot.clear();  // the cancellation handler points at this wait, which ends now
    auto h = std::move(*handler);
    handler.reset();
    std::move(h)(ec);
  }
  void abandon() override {
    slot.clear();  // before the coroutine (which may own the signal) goes
    handler.reset();
  }
  std::optional<Handler> handler;
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
  w->executor = asio::get_associated_executor(*w->handler);
  if (auto slot = asio::get_associated_cancellation_slot(*w->handler); slot.is_connected()) {
    w->slot = slot;
    slot.assign([this, raw = w.get()](asio::cancellation_type) {
      if (auto mine = take(raw)) resume(std::move(mine), asio::error::operation_aborted);
    });
  }
  // Listed before it can be taken, so that resume() finds it listed.
  w->parked_at =
      asio::use_service<parking_service>(asio::query(w->executor, asio::execution::context))
          .waiters;
  // Refused only once its context has shut down, when nothing of it runs any more.
  if (!w->parked_at->park(*w)) return w->abandon();
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

bool event_count::resume(std::shared_ptr<waiter> w, boost::system::error_code ec) {
  if (!w->parked_at->unpark(*w)) return false;  // its context shut down and destroyed it
  auto executor = w->executor;
  asio::post(executor, [w = std::move(w), ec] { w->complete(ec); });
  return true;
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
  // One waiter that is resumed: one whose context has gone does not count.
  for (bool first = true;; first = false) {
    std::shared_ptr<waiter> woken;
    {
      std::lock_guard lock(mutex_);
      if (first) ++epoch_;
      if (waiters_.empty()) return;
      woken = std::move(waiters_.back());
      waiters_.pop_back();
    }
    if (resume(std::move(woken), {})) return;
  }
}

}  // namespace quiesce::lifecycle
