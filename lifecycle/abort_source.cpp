#include "lifecycle/abort_source.hpp"

#include <boost/asio/post.hpp>

namespace quiesce::lifecycle {

void abort_source::request_abort() {
  if (requested_.exchange(true, std::memory_order_acq_rel)) return;
  boost::asio::post(executor_, [self = shared_from_this()] {
    self->signal_.emit(boost::asio::cancellation_type::terminal);
  });
}

}  // namespace quiesce::lifecycle
