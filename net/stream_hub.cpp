#include "net/stream_hub.hpp"

#include "lifecycle/log.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <random>
#include <utility>

namespace quiesce::net {
namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using namespace asio::experimental::awaitable_operators;

stream_client::stream_client(asio::any_io_executor strand, std::string id,
                             std::shared_ptr<const send_limit> limit)
    : strand_(strand), id_(std::move(id)), out_(std::move(limit)) {}

void stream_client::deliver(tasks::event_ptr e) {
  bool post = false;
  {
    std::lock_guard lock(inbox_mutex_);
    inbox_.push_back(std::move(e));
    post = !std::exchange(take_posted_, true);
  }
  if (post) asio::post(strand_, [self = shared_from_this()] { self->take_inbox(); });
}

void stream_client::take_inbox() {
  std::optional<close_request> close;
  {
    std::lock_guard lock(inbox_mutex_);
    taking_.swap(inbox_);  // the two vectors trade capacity: no allocation per batch
    close.swap(close_requested_);
    take_posted_ = false;
  }
  out_.begin_burst();
  for (auto& e : taking_) {
    if (!wants(*e)) continue;
    // Share the bus's text: an aliasing pointer, no copy per client.
    if (!out_.push(frame(e, &e->text)) && on_overflow) on_overflow();
  }
  out_.end_burst();
  taking_.clear();
  if (close) out_.close(std::move(close->reason), std::move(close->last));
}

void stream_client::request_close(websocket::close_reason reason, frame last) {
  bool post = false;
  {
    std::lock_guard lock(inbox_mutex_);
    if (close_requested_) return;  // the first close wins, as in the outbox
    close_requested_ = close_request{std::move(reason), std::move(last)};
    post = !std::exchange(take_posted_, true);
  }
  if (post) asio::post(strand_, [self = shared_from_this()] { self->take_inbox(); });
}

stream_hub::stream_hub(stream_settings settings, tasks::event_bus& bus)
    : settings_(std::move(settings)),
      bus_(bus),
      limit_(std::make_shared<send_limit>(settings_.send_queue_limit,
                                          settings_.send_queue_byte_limit)) {}

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

}  // namespace quiesce::net
