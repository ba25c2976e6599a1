#include "stream/stream_hub.hpp"

#include "support/log.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <random>
#include <utility>

namespace quiesce::stream {
namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using namespace asio::experimental::awaitable_operators;

stream_hub::stream_hub(stream_settings settings, tasks::event_bus& bus)
    : settings_(std::move(settings)),
      bus_(bus),
      limit_(std::make_shared<send_limit>(settings_.send_queue_limit,
                                          settings_.send_queue_byte_limit)) {}

std::shared_ptr<stream_fanout> stream_hub::fanout_for(const asio::any_io_executor& thread) {
  std::lock_guard lock(mutex_);
  for (auto& f : fanouts_)
    if (f->executor() == thread) return f;
  auto f = std::make_shared<stream_fanout>(thread, settings_.batch_window);
  bus_.subscribe(f, std::nullopt, true);  // live events only: each client has its own replay
  fanouts_.push_back(f);
  return f;
}

bool stream_hub::add(const std::shared_ptr<stream_client>& c) {
  std::lock_guard lock(mutex_);
  if (closing_) return false;
  clients_.insert(c);
  ++opened_total_;
  return true;
}

void stream_hub::remove(const std::shared_ptr<stream_client>& c) {
  bool none_left = false;
  {
    std::lock_guard lock(mutex_);
    clients_.erase(c);  // by key: a scan made 10,000 streams closing at once quadratic
    none_left = clients_.empty();
  }
  // close_all() is the only waiter, and only for the last: see task_group::leave.
  if (none_left) changed_.notify_all();
}

std::size_t stream_hub::open() const {
  std::lock_guard lock(mutex_);
  return clients_.size();
}

frame stream_hub::draining_frame() const {
  // Jitter spreads the reconnects of clients closed at the same moment.
  thread_local std::minstd_rand jitter(std::random_device{}());
  boost::json::object o{{"type", "draining"},
                        {"reason", "server shutting down"},
                        {"epoch", bus_.epoch()},
                        {"last_seq", bus_.last_seq()},
                        {"reconnect_after_ms", 100 + jitter() % 900}};
  return make_frame(o);
}

asio::awaitable<void> stream_hub::close_all(std::chrono::milliseconds spread) {
  std::vector<std::shared_ptr<stream_client>> targets;
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
    targets.assign(clients_.begin(), clients_.end());
  }
  auto start = std::chrono::steady_clock::now();
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (spread.count() > 0 && i > 0) {
      timer.expires_at(start + spread * i / targets.size());
      co_await timer.async_wait(asio::use_awaitable);
    }
    targets[i]->request_close(
        websocket::close_reason(websocket::close_code::service_restart, "server restarting"),
        draining_frame());
  }
  timer.expires_after(settings_.close_timeout);
  auto r = co_await (changed_.wait_until([this] { return open() == 0; }) ||
                     timer.async_wait(asio::use_awaitable));
  if (r.index() == 1) log::warn("close handshakes timed out", {{"still_open", open()}});
}

}  // namespace quiesce::stream
