#include "tasks/pg/pool.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace quiesce::tasks::pg {
namespace asio = boost::asio;

asio::awaitable<std::unique_ptr<connection>> pool::acquire() {
  if (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    co_return c;
  }
  if (open_ >= size_) {
    auto w = std::make_shared<waiter>(co_await asio::this_coro::executor);
    waiters_.push_back(w);
    w->wake.expires_after(timeout_);
    boost::system::error_code ec;
    co_await w->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!w->woken) {
      std::erase(waiters_, w);
      throw db_error("every PostgreSQL connection stayed busy past the timeout", true);
    }
    if (w->handed) co_return std::move(w->handed);
    // A connection was lost meanwhile: its place is ours.
  }
  ++open_;
  try {
    co_return co_await connection::open(conninfo_, timeout_);
  } catch (...) {
    --open_;
    throw;
  }
}

void pool::release(std::unique_ptr<connection> c) {
  if (c->broken()) {
    c.reset();
    --open_;
  }
  if (!waiters_.empty()) {
    auto w = std::move(waiters_.front());
    waiters_.pop_front();
    w->woken = true;
    w->handed = std::move(c);
    w->wake.cancel();
    return;
  }
  if (c) idle_.push_back(std::move(c));
}

asio::awaitable<result> pool::run(std::string sql, std::vector<param> params) {
  const auto began = std::chrono::steady_clock::now();
  std::unique_ptr<connection> c;
  try {
    c = co_await acquire();
  } catch (const db_error& e) {
    if (e.lost && on_health) on_health(false, began, e.what());
    throw;
  }
  std::exception_ptr failed;
  result r;
  try {
    r = co_await c->exec(sql, params, timeout_);
    if (on_health) on_health(true, began, {});
  } catch (const db_error& e) {
    if (e.lost && on_health) on_health(false, began, e.what());
    failed = std::current_exception();
  } catch (...) {
    failed = std::current_exception();
  }
  bool lost = c->broken();
  release(std::move(c));
  if (lost) {
    // The idle connections talk to the same server: after a restart they are as dead, and the
    // next statement on one would report the outage again although the server is back.
    open_ -= idle_.size();
    idle_.clear();
  }
  if (failed) std::rethrow_exception(failed);
  co_return r;
}

}  // namespace quiesce::tasks::pg
