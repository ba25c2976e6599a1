// One node of the cancellation tree: the coroutines spawned through it (listeners, sessions,
// workers) each get their own cancellation slot, and the group can cancel them all and wait
// until they have finished. Seastar's gate + abort_source, in Asio's terms.
//
//   group.spawn(strand, serve(...));
//   group.emit(asio::cancellation_type::partial);   // only children that opted in react
//   co_await group.wait_empty();
//
// Once emitted, the group stays told (Seastar's closed gate): a child spawned later, such as an
// admin session accepted just as the server stops, gets what was emitted at once.
#pragma once

#include "lifecycle/event_count.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/consign.hpp>

#include <exception>
#include <list>
#include <memory>
#include <mutex>
#include <string>

namespace quiesce::lifecycle {

// The completion handler a child gets unless it brings its own: an exception that escaped the
// coroutine is logged with the group's name (with `detached`, an exception in a route or in a
// socket option ended its connection, or a listener, without a word).
struct log_escaped {
  std::string group;
  void operator()(std::exception_ptr e) const;
};

class task_group {
  struct child {
    boost::asio::cancellation_signal signal;
    boost::asio::any_io_executor executor;  // the child's strand: signal is only touched there
  };
  using child_list = std::list<std::shared_ptr<child>>;
  // Shared with the members: a coroutine destroyed unrun when its io_context goes (after a
  // drain that timed out) may outlive the group object, and must still be able to leave.
  struct state {
    mutable std::mutex mutex;
    child_list children;
    event_count changed;
    boost::asio::cancellation_type emitted = boost::asio::cancellation_type::none;  // so far
  };

  // Leaves the group when the child's completion handler is destroyed (after it ran).
  class member {
   public:
    member(std::shared_ptr<state> s, child_list::iterator it) : state_(std::move(s)), it_(it) {}
    member(member&& o) noexcept = default;
    member& operator=(member&&) = delete;
    ~member() {
      if (state_) leave(*state_, it_);
    }

   private:
    std::shared_ptr<state> state_;
    child_list::iterator it_;
  };

 public:
  explicit task_group(std::string name) : name_(std::move(name)) {}
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  // co_spawns `op` (an awaitable, or a function returning one) onto `executor` as a child with
  // its own slot; `handler` gets how it ended. If the group was emitted to before the child's
  // slot was connected, the child is told now: no emit is lost to a child joining late.
  template <typename Op, typename Handler>
  void spawn(boost::asio::any_io_executor executor, Op op, Handler handler) {
    auto it = join(executor);
    auto c = *it;  // `it` may be gone when co_spawn returns: the child can end inline
    boost::asio::co_spawn(
        executor, std::move(op),
        boost::asio::bind_cancellation_slot(
            c->signal.slot(), boost::asio::consign(std::move(handler), member{state_, it})));
    tell_if_late(c);
  }
  // The same, with log_escaped as the handler.
  template <typename Op>
  void spawn(boost::asio::any_io_executor executor, Op op) {
    spawn(std::move(executor), std::move(op), log_escaped{name_});
  }

  // Delivers `type` to every current child, each on its own executor, and to every later one.
  void emit(boost::asio::cancellation_type type);
  // Completes once the group has no children.
  boost::asio::awaitable<void> wait_empty();
  std::size_t size() const;
  const std::string& name() const { return name_; }

 private:
  child_list::iterator join(boost::asio::any_io_executor executor);
  void tell_if_late(const std::shared_ptr<child>& c);
  static void leave(state& s, child_list::iterator it);

  std::string name_;
  std::shared_ptr<state> state_ = std::make_shared<state>();
};

}  // namespace quiesce::lifecycle
