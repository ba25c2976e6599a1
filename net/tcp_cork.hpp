// TCP_CORK around one client's burst of frames. While more frames wait behind the one being
// written, the kernel holds them and sends full segments once uncorked, instead of a segment per
// frame (with TCP_NODELAY on, a frame is otherwise a segment, and on loopback the receiver's
// processing of each segment is charged to the sender's CPU). Linux only; a no-op elsewhere.
#pragma once

#include <boost/asio/ip/tcp.hpp>

namespace quiesce::net {

class tcp_cork {
 public:
  explicit tcp_cork(boost::asio::ip::tcp::socket& s) : socket_(s) {}
  // Corks while `more` frames follow; uncorking sends what the kernel held at once.
  void hold(bool more);

 private:
  boost::asio::ip::tcp::socket& socket_;
  bool on_ = false;
};

}  // namespace quiesce::net
