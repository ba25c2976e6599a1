#include "command/orphan_reaper.hpp"

#include "command/child_process.hpp"
#include "support/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <signal.h>
#include <sys/signalfd.h>

#include <system_error>

namespace quiesce::command {
namespace asio = boost::asio;

void block_child_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

asio::awaitable<void> reap_orphans() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  int fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
  asio::posix::stream_descriptor signals(co_await asio::this_coro::executor, fd);
  reap_strangers();  // any that came before
  signalfd_siginfo info{};
  for (;;) {
    auto [ec, bytes] = co_await signals.async_read_some(asio::buffer(&info, sizeof info),
                                                        asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) throw boost::system::system_error(ec, "reading SIGCHLD");
    // Several SIGCHLDs pending are one: reap every orphan there is.
    if (int reaped = reap_strangers()) log::debug("orphans reaped", {{"count", reaped}});
  }
}

}  // namespace quiesce::command
