// One libpq connection driven by Asio: non-blocking, every wait an async_wait on its socket, never
// a blocking libpq call. Use it from one thread only: the PostgreSQL store runs on an io_context
// of its own with one thread (see connection.cpp for why that matters to Asio's epoll reactor).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace quiesce::tasks::pg {

// A statement that failed. `lost`: the connection is gone (or timed out) and was closed; the
// database may or may not have committed. Otherwise the server refused it: `sqlstate` says why.
struct db_error : std::runtime_error {
  db_error(const std::string& what, bool lost_, std::string state = {})
      : std::runtime_error(what), lost(lost_), sqlstate(std::move(state)) {}
  bool lost;
  std::string sqlstate;
};

// The rows of one statement, text format.
class result {
 public:
  result() = default;
  explicit result(pg_result* r);
  int rows() const;
  int affected() const;  // rows an INSERT/UPDATE/DELETE touched
  bool null(int row, int col) const;
  std::string_view get(int row, int col) const;
  std::int64_t integer(int row, int col) const;

 private:
  std::shared_ptr<pg_result> r_;
};

struct notification {
  std::string channel;
  std::string payload;
};

using param = std::optional<std::string>;  // nullopt: SQL NULL

class connection {
 public:
  // Connects within `timeout`. `conninfo` is a URI or key=value string; PG* variables apply.
  static boost::asio::awaitable<std::unique_ptr<connection>> open(
      std::string conninfo, std::chrono::milliseconds timeout);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // One statement with parameters ($1, $2, ...); throws db_error. Past `timeout` the connection
  // is closed (PQcancel blocks before libpq 17) and db_error{lost} thrown.
  boost::asio::awaitable<result> exec(std::string_view sql, const std::vector<param>& params,
                                      std::chrono::milliseconds timeout);
  // Several statements without parameters (schema changes), as one simple query.
  boost::asio::awaitable<void> script(std::string_view sql, std::chrono::milliseconds timeout);
  // Waits until at least one notification arrived (LISTEN), without a bound; throws db_error
  // when the connection is lost. Honours cancellation of the caller.
  boost::asio::awaitable<std::vector<notification>> notifications();
  bool broken() const { return broken_; }

 private:
  connection(pg_conn* c, const boost::asio::any_io_executor& ex);
  boost::asio::awaitable<result> finish(std::chrono::steady_clock::time_point until);
  boost::asio::awaitable<void> send_and_flush(std::chrono::steady_clock::time_point until);
  boost::asio::awaitable<result> collect(std::chrono::steady_clock::time_point until);
  boost::asio::awaitable<void> readable(std::optional<std::chrono::steady_clock::time_point> until);
  // Marks the connection unusable; the caller throws what it returns.
  db_error lost(const std::string& what);
  void take_notifications();

  pg_conn* conn_;
  boost::asio::posix::stream_descriptor socket_;
  bool broken_ = false;
  std::vector<notification> pending_;
};

// Checks a URI or key=value string without connecting; returns libpq's complaint, or nothing.
std::optional<std::string> conninfo_error(const std::string& conninfo);

}  // namespace quiesce::tasks::pg
