#include "net/tcp_cork.hpp"

#ifdef __linux__
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

namespace quiesce::net {

void tcp_cork::hold(bool more) {
  if (more == on_) return;
  on_ = more;
#ifdef __linux__
  int v = more ? 1 : 0;
  // A socket that cannot be corked (closed under us) just sends frame by frame.
  ::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_CORK, &v, sizeof v);
#endif
}

}  // namespace quiesce::net
