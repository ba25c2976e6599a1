#include "net/connection_deadline.hpp"

#include <boost/asio/steady_timer.hpp>

namespace quiesce::net {
namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

struct connection_deadline::state : std::enable_shared_from_this<state> {
  explicit state(asio::ip::tcp::socket& s) : socket(&s), timer(s.get_executor()) {}

  void wait_until(clock::time_point t) {
    waiting = true;
    timer.expires_at(t);  // cancels a wait for a later time: its handler sees operation_aborted
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec != asio::error::operation_aborted) self->fired();
    });
  }

  void fired() {
    waiting = false;
    if (!socket) return;
    if (clock::now() < deadline) return wait_until(deadline);  // it moved while we waited
    boost::system::error_code ignored;
    // With nothing in progress (the request is being answered) this does nothing, and the next
    // read or write sets a deadline of its own first.
    socket->cancel(ignored);
  }

  asio::ip::tcp::socket* socket;  // null once the connection is done with it
  asio::steady_timer timer;
  clock::time_point deadline = clock::time_point::max();
  bool waiting = false;  // a wait is pending that will look at `deadline`
};

connection_deadline::connection_deadline(asio::ip::tcp::socket& socket)
    : state_(std::make_shared<state>(socket)) {}

connection_deadline::~connection_deadline() {
  state_->socket = nullptr;
  state_->timer.cancel();
}

void connection_deadline::expires_after(clock::duration d) {
  auto& s = *state_;
  s.deadline = clock::now() + d;
  if (!s.waiting || s.deadline < s.timer.expiry()) s.wait_until(s.deadline);
}

}  // namespace quiesce::net
