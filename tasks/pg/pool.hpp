// A few connections shared by the store's coroutines, opened when first needed and dropped when
// lost (the next statement opens a fresh one). One thread only, like the connections themselves.
#pragma once

#include "tasks/pg/connection.hpp"

#include <boost/asio/steady_timer.hpp>

#include <deque>

namespace quiesce::tasks::pg {

class pool {
 public:
  pool(std::string conninfo, std::size_t size, std::chrono::milliseconds timeout)
      : conninfo_(std::move(conninfo)), size_(size), timeout_(timeout) {}

  // One statement on an idle connection; waits for one (within the timeout) when all are busy.
  // Each argument is a parameter ($1, $2, ...): a string, or an empty optional for NULL. Throws
  // db_error. (Not a braced list: GCC 12 rejects one of temporaries in a co_await.)
  template <typename... Args>
  boost::asio::awaitable<result> exec(std::string_view sql, Args&&... args) {
    return run(std::string(sql), std::vector<param>{param(std::forward<Args>(args))...});
  }
  boost::asio::awaitable<result> exec_with(std::string_view sql, std::vector<param> params) {
    return run(std::string(sql), std::move(params));
  }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Told of each statement's outcome (success, or a lost connection: not a refusal) with when
  // its attempt began, waiting and connecting included.
  using clock = std::chrono::steady_clock;
  std::function<void(bool reached, clock::time_point began, const std::string& why)> on_health;

 private:
  struct waiter {
    explicit waiter(const boost::asio::any_io_executor& ex)
        : wake(ex, boost::asio::steady_timer::time_point::max()) {}
    boost::asio::steady_timer wake;
    std::unique_ptr<connection> handed;  // a released connection, or none: open your own
    bool woken = false;
  };
  boost::asio::awaitable<result> run(std::string sql, std::vector<param> params);
  boost::asio::awaitable<std::unique_ptr<connection>> acquire();
  void release(std::unique_ptr<connection> c);

  const std::string conninfo_;
  const std::size_t size_;
  const std::chrono::milliseconds timeout_;
  std::vector<std::unique_ptr<connection>> idle_;
  std::size_t open_ = 0;  // idle, in use, or being opened
  std::deque<std::shared_ptr<waiter>> waiters_;
};

}  // namespace quiesce::tasks::pg
