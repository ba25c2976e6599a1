#include "lifecycle/task_group.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

namespace quiesce::lifecycle {
namespace asio = boost::asio;

task_group::child_list::iterator task_group::join(asio::any_io_executor executor) {
  auto c = std::make_shared<child>();
  c->executor = std::move(executor);
  std::lock_guard lock(mutex_);
  return children_.insert(children_.end(), std::move(c));
}

void task_group::leave(child_list::iterator it) {
  {
    std::lock_guard lock(mutex_);
    // The handler installed by co_spawn in our slot refers to the finished coroutine; drop it
    // so a late emit finds nothing. We run on the child's executor, as the emits do.
    (*it)->signal.slot().clear();
    children_.erase(it);
  }
  changed_.notify_all();
}

void task_group::emit(asio::cancellation_type type) {
  std::lock_guard lock(mutex_);
  for (auto& c : children_) asio::post(c->executor, [c, type] { c->signal.emit(type); });
}

asio::awaitable<void> task_group::wait_empty() {
  for (;;) {
    auto key = changed_.prepare_wait();
    if (size() == 0) co_return;
    co_await changed_.wait(key);
  }
}

std::size_t task_group::size() const {
  std::lock_guard lock(mutex_);
  return children_.size();
}

}  // namespace quiesce::lifecycle
