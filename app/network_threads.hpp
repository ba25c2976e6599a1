// The network threads, one io_context each. A connection is accepted onto one of them and stays
// there, and so does a worker: a request's handlers take no scheduler lock that every thread
// shares and wake no other thread to run. One io_context run by two threads cost about twice the
// CPU per POST (the scheduler's futex wake-ups and lock; bench/HISTORY.md).
#pragma once

#include "lifecycle/executor_source.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <memory>
#include <vector>

namespace quiesce::app {

// An io_context whose queued handlers can be destroyed before the parts they point at: coroutine
// frames still queued after a drain that timed out hold references into the server.
class owned_context : public boost::asio::io_context {
 public:
  using boost::asio::execution_context::shutdown;  // destroys every queued handler
  using io_context::io_context;
};

class network_threads {
 public:
  explicit network_threads(unsigned count);

  // Where the next connection or worker runs, round robin over the threads: the thread's
  // io_context executor, a strand already since one thread runs it.
  lifecycle::executor_source strands();
  // Runs each context on its own thread, the first on the caller's; returns once stop() was
  // called and every thread has returned. Out of work, a thread waits for stop() all the same:
  // the control plane may still post to it (a group's leave, a late session).
  void run();
  void stop();
  // Destroys every queued handler (after run() has returned).
  void shutdown();

 private:
  std::vector<std::unique_ptr<owned_context>> contexts_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace quiesce::app
