#include "lifecycle/task_group.hpp"

#include "support/log.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

namespace quiesce::lifecycle {
namespace asio = boost::asio;

void log_escaped::operator()(std::exception_ptr e) const {
  if (e) log::error("coroutine failed", {{"group", group}, {"error", log::describe(e)}});
}

task_group::child_list::iterator task_group::join(asio::any_io_executor executor) {
  auto c = std::make_shared<child>();
  c->executor = std::move(executor);
  std::lock_guard lock(state_->mutex);
  return state_->children.insert(state_->children.end(), std::move(c));
}

void task_group::leave(state& s, child_list::iterator it) {
  bool none_left = false;
  {
    std::lock_guard lock(s.mutex);
    // The handler installed by co_spawn in our slot refers to the finished coroutine; drop it
    // so a late emit finds nothing. We run on the child's executor, as the emits do.
    (*it)->signal.slot().clear();
    s.children.erase(it);
    none_left = s.children.empty();
  }
  // wait_empty() is the only waiter: waking it for every child of 10,000 ending in a drain cost
  // a post to its thread and a new wait each.
  if (none_left) s.changed.notify_all();
}

void task_group::tell_if_late(const std::shared_ptr<child>& c) {
  std::lock_guard lock(state_->mutex);
  auto type = state_->emitted;
  // Told twice at worst (an emit ran between join and now): every child takes that.
  if (type != asio::cancellation_type::none)
    asio::post(c->executor, [c, type] { c->signal.emit(type); });
}

void task_group::emit(asio::cancellation_type type) {
  std::lock_guard lock(state_->mutex);
  state_->emitted |= type;
  for (auto& c : state_->children) asio::post(c->executor, [c, type] { c->signal.emit(type); });
}

asio::awaitable<void> task_group::wait_empty() {
  co_await state_->changed.wait_until([this] { return size() == 0; });
}

std::size_t task_group::size() const {
  std::lock_guard lock(state_->mutex);
  return state_->children.size();
}

}  // namespace quiesce::lifecycle
