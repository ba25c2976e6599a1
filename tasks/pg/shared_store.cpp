#include "tasks/pg/shared_store.hpp"

namespace quiesce::tasks::pg {

shared_store::shared_store(const store_settings& s, kind_registry kinds,
                           boost::asio::thread_pool& cpu, stream_head head)
    : bus_(std::move(head.epoch), s.event_retention, head.last_seq, std::move(head.events)),
      service_(s.shared, std::move(kinds), bus_, cpu) {
  service_.open();
}

void shared_store::start(const lifecycle::executor_source& strands, lifecycle::task_group& workers,
                         lifecycle::task_group& background) {
  service_.start(strands, workers);
  service_.start_background(background);
}

}  // namespace quiesce::tasks::pg
