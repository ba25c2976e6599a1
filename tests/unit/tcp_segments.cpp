#include "tcp_segments.hpp"

#include <linux/tcp.h>
#include <netinet/in.h>  // IPPROTO_TCP
#include <sys/socket.h>

namespace quiesce::test {

unsigned data_segments_in(int fd) {
  tcp_info info{};
  socklen_t n = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &n) != 0) return 0;
  return info.tcpi_data_segs_in;
}

}  // namespace quiesce::test
