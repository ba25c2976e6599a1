// Where a new connection or worker lives: each call gives an executor that runs one handler at a
// time, on the next network thread when there are several. In the server that is a one-thread
// io_context's own executor (app/network_threads.hpp), in tests a strand.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <functional>

namespace quiesce::lifecycle {

using executor_source = std::function<boost::asio::any_io_executor()>;

// Every connection or worker on an io_context that one thread runs: its executor is a strand.
inline executor_source executor_of(boost::asio::io_context& io) {
  return [&io]() -> boost::asio::any_io_executor { return io.get_executor(); };
}

// A new strand each time, on one io_context that several threads may run (tests).
inline executor_source strands_of(boost::asio::io_context& io) {
  return [&io]() -> boost::asio::any_io_executor { return boost::asio::make_strand(io); };
}

}  // namespace quiesce::lifecycle
