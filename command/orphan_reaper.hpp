// Orphans come back to this process (it is the child subreaper of what it starts, and PID 1 in a
// container): each is reaped when SIGCHLD says a child changed, read from a signalfd so that no
// signal handler runs on any thread and no blocking call elsewhere is interrupted by it.
#pragma once

#include <boost/asio/awaitable.hpp>

namespace quiesce::command {

// Blocks SIGCHLD in the calling thread and in every thread it starts afterwards: call it in main
// before any other thread exists. (A child gets its own empty mask: child_process.cpp.)
void block_child_signal();

// Reaps orphans whenever SIGCHLD is pending, until cancelled.
boost::asio::awaitable<void> reap_orphans();

}  // namespace quiesce::command
