// How many connections one listener holds open at most. Past the limit a new connection is reset
// as soon as it is accepted: its client learns at once, instead of waiting in the kernel's backlog
// for a slot, and the server's descriptors and memory stay within bounds.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>

namespace quiesce::net {

class connection_limit {
  struct counts {
    std::atomic<std::size_t> open{0};
    std::atomic<std::size_t> refused{0};
  };

 public:
  // A connection's place, held for its life (a WebSocket stream's included); empty if refused.
  class slot {
   public:
    slot() = default;
    slot(slot&& other) noexcept = default;
    slot& operator=(slot&& other) noexcept {
      counts_.swap(other.counts_);  // `other` gives back the place this one held
      return *this;
    }
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    ~slot();
    explicit operator bool() const { return counts_ != nullptr; }

   private:
    friend class connection_limit;
    explicit slot(std::shared_ptr<counts> c) : counts_(std::move(c)) {}
    std::shared_ptr<counts> counts_;
  };

  explicit connection_limit(std::size_t max) : max_(max) {}

  // A place for a new connection, or an empty slot (counted as refused) when `max` are open.
  slot try_acquire();
  std::size_t max() const { return max_; }
  std::size_t open() const { return counts_->open.load(std::memory_order_relaxed); }
  std::size_t refused() const { return counts_->refused.load(std::memory_order_relaxed); }

 private:
  std::size_t max_;
  std::shared_ptr<counts> counts_ = std::make_shared<counts>();
};

}  // namespace quiesce::net
