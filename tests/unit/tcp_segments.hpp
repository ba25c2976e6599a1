// How many segments with data a TCP socket has received (Linux's tcp_info). Its own file:
// <linux/tcp.h> has the count, and it cannot be included beside Asio's <netinet/tcp.h>.
#pragma once

namespace quiesce::test {

unsigned data_segments_in(int fd);

}  // namespace quiesce::test
