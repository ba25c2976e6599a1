// The queue in this process, over the memory store or the sqlite journal: the records in memory,
// every change made durable by the journal (when there is one) before the bus delivers it.
#pragma once

#include "tasks/memory_task_store.hpp"
#include "tasks/store.hpp"

#include <optional>

namespace quiesce::tasks {

class local_store final : public store {
 public:
  // sqlite: the journal is opened and what it kept loaded, the unfinished tasks run again;
  // memory: a new epoch. Throws storage_error.
  local_store(const store_settings& s, kind_registry kinds, boost::asio::thread_pool& cpu);

  service& tasks() override { return service_; }
  event_bus& events() override { return bus_; }
  void start(const lifecycle::executor_source& strands, lifecycle::task_group& workers,
             lifecycle::task_group& background) override;
  std::string name() const override;

 private:
  // Members in the order they depend on each other: each is built after what it uses and goes
  // before it.
  std::optional<sqlite_journal> journal_;
  stored_state opened_;  // what the journal held at start, handed to the parts below
  memory_task_store records_;
  event_bus bus_;
  journal_writer writer_;  // delivers to bus_: stops before it goes
  task_service service_;
};

}  // namespace quiesce::tasks
