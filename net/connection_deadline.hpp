// How long a connection's current read or write may take, kept by one timer per connection.
// beast::tcp_stream arms and cancels a timer around every read and write (bench/HISTORY.md);
// here moving the deadline only stores it, and the timer, when
// it fires before the deadline, waits again for the rest. Once the deadline has passed, the
// socket's pending operations are cancelled: the read or write in progress ends with
// operation_aborted and the session closes the connection (a slow peer is simply cut off).
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <memory>

namespace quiesce::net {

class connection_deadline {
 public:
  // `socket` must outlive this; the timer runs on the socket's executor.
  explicit connection_deadline(boost::asio::ip::tcp::socket& socket);
  ~connection_deadline();
  connection_deadline(const connection_deadline&) = delete;
  connection_deadline& operator=(const connection_deadline&) = delete;

  // The read or write about to start must end within `d`. Same strand as the socket's I/O.
  void expires_after(std::chrono::steady_clock::duration d);

 private:
  struct state;
  std::shared_ptr<state> state_;  // shared with the timer's pending wait, which may outlive this
};

}  // namespace quiesce::net
