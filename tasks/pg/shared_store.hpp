// The queue in PostgreSQL, shared by every replica on one database: the bus starts where the
// service's stream is (the database numbers its events), the service claims, runs and follows.
#pragma once

#include "tasks/pg/shared_events.hpp"
#include "tasks/store.hpp"

namespace quiesce::tasks::pg {

class shared_store final : public store {
 public:
  // `head`: where the service's stream is (open_database()).
  shared_store(const store_settings& s, kind_registry kinds, boost::asio::thread_pool& cpu,
               stream_head head);

  service& tasks() override { return service_; }
  event_bus& events() override { return bus_; }
  void start(const lifecycle::executor_source& strands, lifecycle::task_group& workers,
             lifecycle::task_group& background) override;
  std::string name() const override { return "postgres"; }

 private:
  event_bus bus_;
  shared_service service_;
};

}  // namespace quiesce::tasks::pg
