#include "net/connection_limit.hpp"

namespace quiesce::net {

connection_limit::slot::~slot() {
  if (counts_) counts_->open.fetch_sub(1, std::memory_order_relaxed);
}

connection_limit::slot connection_limit::try_acquire() {
  auto n = counts_->open.load(std::memory_order_relaxed);
  do {
    if (n >= max_) {
      counts_->refused.fetch_add(1, std::memory_order_relaxed);
      return {};
    }
  } while (!counts_->open.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
  return slot(counts_);
}

}  // namespace quiesce::net
