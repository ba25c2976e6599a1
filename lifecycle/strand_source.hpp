// Where a new connection or worker lives: each call gives a strand, on the next network thread
// when there are several (app/network_threads.hpp: a one-thread io_context's own executor).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <functional>

namespace quiesce::lifecycle {

using strand_source = std::function<boost::asio::any_io_executor()>;

// Every connection or worker on an io_context that one thread runs: its executor is a strand.
inline strand_source executor_of(boost::asio::io_context& io) {
  return [&io]() -> boost::asio::any_io_executor { return io.get_executor(); };
}

// A new strand each time, on one io_context that several threads may run (tests).
inline strand_source strands_of(boost::asio::io_context& io) {
  return [&io]() -> boost::asio::any_io_executor { return boost::asio::make_strand(io); };
}

}  // namespace quiesce::lifecycle
