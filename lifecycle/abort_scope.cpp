#include "lifecycle/abort_scope.hpp"

#include <boost/asio/post.hpp>

namespace quiesce::lifecycle {

void abort_scope::ticket::request_abort() const {
  if (scope_) scope_->abort(id_);
}

bool abort_scope::ticket::abort_requested() const {
  return scope_ && scope_->aborted_.load(std::memory_order_acquire) == id_;
}

abort_scope::ticket abort_scope::begin() {
  current_ = ++started_;
  return ticket(shared_from_this(), current_);
}

bool abort_scope::end(const ticket& t) {
  current_ = 0;
  return t.abort_requested() && !caller_cancelled_;
}

void abort_scope::abort(std::uint64_t id) {
  // Ids only grow, and only the operation under way is aborted, so the latest id asked is kept;
  // a second request for the same operation posts nothing.
  auto asked = aborted_.load(std::memory_order_acquire);
  do {
    if (asked >= id) return;
  } while (!aborted_.compare_exchange_weak(asked, id, std::memory_order_acq_rel));
  boost::asio::post(executor_, [self = shared_from_this(), id] {
    if (self->current_ == id) self->signal_.emit(boost::asio::cancellation_type::terminal);
  });
}

}  // namespace quiesce::lifecycle
