// Follows task events over the server's WebSocket stream until the tasks it follows have ended.
// When the stream closes (1012 during a rollout, 1013 when too slow, or the connection drops)
// it reconnects with exponential backoff and jitter, resumes with ?since=<seq>&epoch=<epoch>,
// and where the replay cannot be trusted (another epoch, a gap) re-reads the tasks over HTTP.
#pragma once

#include "cli/server_address.hpp"
#include "cli/task_view.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>

namespace quiesce::cli {

// The process's exit codes, also what run() returns.
enum exit_code : int {
  succeeded = 0,     // every followed task succeeded
  task_failed = 1,   // a followed task ended failed, cancelled or interrupted
  usage = 2,         // bad arguments
  unreachable = 3,   // no server, gave up reconnecting, or the server lost the task
  refused_code = 4,  // the server answered the request with an error
};

struct follow_settings {
  std::chrono::milliseconds first_backoff{250};
  std::chrono::milliseconds max_backoff{5000};
  std::chrono::seconds give_up{60};  // reconnecting for longer than this: unreachable
};

class follower {
 public:
  follower(server_address at, task_view& view, follow_settings settings);

  // Opens the stream (before a submit, so that no event of the new task can be missed; again
  // after a close, resuming from the last seq).
  boost::asio::awaitable<bool> open(std::string* why);
  // From now on the stream is narrowed to these tasks and run() waits for them to end.
  boost::asio::awaitable<void> follow(std::set<std::string> ids);
  // Reads events until every followed task ended (never, when following every task).
  boost::asio::awaitable<exit_code> run();

 private:
  using ws_stream = boost::beast::websocket::stream<boost::beast::tcp_stream>;

  boost::asio::awaitable<void> subscribe();
  // The next message; nullopt once the stream closed (close_code_ says how).
  boost::asio::awaitable<std::optional<boost::json::object>> next();
  boost::asio::awaitable<bool> reconnect();
  boost::asio::awaitable<void> catch_up_by_get();
  void on_task(const boost::json::object& e);
  bool done() const { return !all_ && pending_.empty(); }
  exit_code outcome() const;

  server_address at_;
  task_view& view_;
  follow_settings settings_;
  std::optional<ws_stream> ws_;
  bool all_ = true;  // following every task (watch without --task)
  std::set<std::string> pending_;
  std::map<std::string, std::string> ended_;  // task id -> its final status
  std::string epoch_;
  std::optional<std::uint64_t> last_seq_;
  bool epoch_changed_ = false;  // the last open() met another epoch: replay cannot be trusted
  unsigned close_code_ = 0;
  std::string close_reason_;
  std::chrono::milliseconds hint_{0};  // reconnect_after_ms of the last `draining`
  std::minstd_rand jitter_{std::random_device{}()};
};

}  // namespace quiesce::cli
