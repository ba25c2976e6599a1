// Where a new connection or worker lives: each call gives a strand, on the next network thread
// when there are several (app/network_threads.hpp: a one-thread io_context's own executor).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <functional>

namespace quiesce::lifecycle {

using strand_source = std::function<boost::asio::any_io_executor()>;

// Every strand on one io_context (the control plane, tests).
inline strand_source strands_of(boost::asio::io_context& io) {
  return [&io]() -> boost::asio::any_io_executor { return boost::asio::make_strand(io); };
}

}  // namespace quiesce::lifecycle
