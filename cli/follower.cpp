#include "cli/follower.hpp"

#include "cli/http_client.hpp"
#include "cli/task_event.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>

namespace quiesce::cli {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace json = boost::json;
using std::chrono::milliseconds;

follower::follower(server_address at, task_view& view, follow_settings settings)
    : at_(std::move(at)), view_(view), settings_(settings) {}

asio::awaitable<bool> follower::open(std::string* why) {
  ws_.emplace(co_await asio::this_coro::executor);
  epoch_changed_ = false;
  auto& layer = beast::get_lowest_layer(*ws_);
  if (!co_await connect_to(at_, layer, why, std::chrono::seconds(10))) co_return false;
  std::string target = "/v1/events";
  if (last_seq_) target += "?since=" + std::to_string(*last_seq_) + "&epoch=" + epoch_;
  auto [hec] =
      co_await ws_->async_handshake(at_.host_header, target, asio::as_tuple(asio::use_awaitable));
  if (hec) {
    *why = "the stream was refused: " + hec.message();
    co_return false;
  }
  layer.expires_never();
  ws_->set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  // The first message is hello: it names the epoch that `seq` counts in.
  auto hello = co_await next();
  if (!hello || field(*hello, "type") != "hello") {
    *why = "the stream did not start with hello";
    co_return false;
  }
  auto epoch = std::string(field(*hello, "epoch"));
  bool same_epoch = epoch == epoch_;
  if (!last_seq_ || !same_epoch) last_seq_ = (*hello)["seq"].to_number<std::uint64_t>();
  // Another server's numbering: what we had is no base for a replay.
  epoch_changed_ = !epoch_.empty() && !same_epoch;
  epoch_ = epoch;
  if (!all_) co_await subscribe();
  co_return true;
}

asio::awaitable<void> follower::subscribe() {
  json::array ids;
  for (auto& id : pending_) ids.emplace_back(id);
  auto text = json::serialize(json::object{{"type", "subscribe"}, {"tasks", std::move(ids)}});
  co_await ws_->async_write(asio::buffer(text), asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<void> follower::follow(std::set<std::string> ids) {
  all_ = false;
  pending_ = std::move(ids);
  for (auto it = pending_.begin(); it != pending_.end();)
    it = ended_.contains(*it) ? pending_.erase(it) : std::next(it);
  if (ws_) co_await subscribe();
}

asio::awaitable<std::optional<json::object>> follower::next() {
  for (;;) {
    beast::flat_buffer buffer;
    auto [ec, n] = co_await ws_->async_read(buffer, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      close_code_ = ec == websocket::error::closed ? ws_->reason().code : 1006;
      close_reason_ =
          ec == websocket::error::closed ? std::string(ws_->reason().reason.c_str()) : ec.message();
      co_return std::nullopt;
    }
    json::error_code jec;
    auto v = json::parse(beast::buffers_to_string(buffer.data()), jec);
    if (!jec && v.is_object()) co_return std::move(v.as_object());
  }
}

void follower::on_task(const json::object& e) {
  auto id = std::string(field(e, "task_id"));
  if (!all_ && !pending_.contains(id)) return;
  view_.show(e);
  auto status = std::string(field(e, "status"));
  if (is_final(status)) {
    ended_[id] = status;
    pending_.erase(id);
  }
}

asio::awaitable<exit_code> follower::run() {
  while (!done()) {
    auto m = co_await next();
    if (m) {
      auto type = field(*m, "type");
      if (type == "task") {
        if (auto seq = m->if_contains("seq")) last_seq_ = seq->to_number<std::uint64_t>();
        on_task(*m);
      } else if (type == "draining") {
        hint_ = milliseconds((*m)["reconnect_after_ms"].to_number<std::int64_t>());
        view_.note("the server is draining");
      } else if (type == "gap") {
        co_await catch_up_by_get();  // some events are gone: re-read the tasks
      }
      continue;
    }
    if (close_code_ == 1000 || close_code_ == 1008) {
      view_.note("the server closed the stream " + std::to_string(close_code_) + " (" +
                 close_reason_ + "): not reconnecting");
      co_return unreachable;
    }
    if (!co_await reconnect()) co_return unreachable;
    if (epoch_changed_) co_await catch_up_by_get();
  }
  co_await ws_->async_close(websocket::close_code::normal, asio::as_tuple(asio::use_awaitable));
  co_return outcome();
}

asio::awaitable<bool> follower::reconnect() {
  auto ex = co_await asio::this_coro::executor;
  auto start = std::chrono::steady_clock::now();
  auto base = std::max(settings_.first_backoff, hint_);
  hint_ = milliseconds(0);
  std::string why = "stream closed " + std::to_string(close_code_) +
                    (close_reason_.empty() ? "" : " (" + close_reason_ + ")");
  for (int attempt = 0;; ++attempt) {
    // Full growth to the cap, then +-50 % so that clients closed together come back apart.
    auto grown = std::min<std::int64_t>(settings_.max_backoff.count(),
                                        base.count() << std::min(attempt, 16));
    std::uniform_real_distribution<double> spread(0.5, 1.5);
    milliseconds delay(static_cast<std::int64_t>(static_cast<double>(grown) * spread(jitter_)));
    if (std::chrono::steady_clock::now() + delay - start > settings_.give_up) {
      view_.note("giving up: " + why);
      co_return false;
    }
    view_.note(why + ": reconnecting in " + std::to_string(delay.count()) + " ms (attempt " +
               std::to_string(attempt + 1) + ")");
    asio::steady_timer timer(ex, delay);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (co_await open(&why)) {
      view_.note("reconnected to " + at_.host_header + " (epoch " + epoch_.substr(0, 8) +
                 ", since " + std::to_string(*last_seq_) + ")");
      co_return true;
    }
  }
}

asio::awaitable<void> follower::catch_up_by_get() {
  std::set<std::string> ids = pending_;
  for (const auto& id : ids) {
    std::string why;
    auto a = co_await http_call(at_, beast::http::verb::get, "/v1/tasks/" + id, {}, &why);
    if (!a) {
      view_.note("cannot re-read task " + id + ": " + std::move(why));
      continue;
    }
    if (a->status == 404) {
      // A server without the durable store, replaced: nothing there knows the task.
      view_.note("the server does not know task " + id + ": it was lost");
      ended_[id] = "lost";
      pending_.erase(id);
      continue;
    }
    if (a->status != 200 || !a->body.is_object()) continue;
    auto record = a->body.as_object();
    record["type"] = "task";
    record["caught_up"] = true;
    on_task(record);
  }
}

exit_code follower::outcome() const {
  exit_code worst = succeeded;
  for (const auto& [id, status] : ended_) {
    if (status == "lost") return unreachable;
    if (status != "succeeded") worst = task_failed;
  }
  return worst;
}

}  // namespace quiesce::cli
