// Where tasks are kept, opened once: app/ asks for the configured store and gets one object that
// owns everything it needs (journal or connection pool, their threads, the event bus, the service
// and its workers) with the same verbs for every store. open_store() is the one place that tells
// the stores apart.
#pragma once

#include "lifecycle/executor_source.hpp"
#include "lifecycle/task_group.hpp"
#include "tasks/event_bus.hpp"
#include "tasks/pg/shared_service.hpp"
#include "tasks/service.hpp"
#include "tasks/sqlite_journal.hpp"
#include "tasks/task_service.hpp"

#include <boost/asio/thread_pool.hpp>

#include <memory>
#include <stdexcept>
#include <string>

namespace quiesce::tasks {

enum class store_kind { memory, sqlite, postgres };

// Filled from the configuration (app/settings.cpp; every default is in app/config.hpp).
struct store_settings {
  store_kind kind = store_kind::sqlite;
  service_settings local;      // memory and sqlite
  journal_settings journal;    // sqlite
  pg::shared_settings shared;  // postgres
  std::size_t task_retention{};
  std::size_t event_retention{};
};

// The store cannot be opened (missing, read-only or corrupt data, an unusable database); the
// reason was logged.
struct store_unusable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class store {
 public:
  virtual ~store() = default;
  virtual service& tasks() = 0;
  virtual event_bus& events() = 0;
  // Spawns the workers into `workers`, each on a strand from `strands`, and what must run until
  // the process ends (a shared store's heartbeat and listener) into `background`.
  virtual void start(const lifecycle::executor_source& strands, lifecycle::task_group& workers,
                     lifecycle::task_group& background) = 0;
  // How the log names it: the database file, or the store's kind.
  virtual std::string name() const = 0;
};

// Opens the configured store with what an earlier process left in it; throws store_unusable.
std::unique_ptr<store> open_store(const store_settings& s, kind_registry kinds,
                                  boost::asio::thread_pool& cpu);

}  // namespace quiesce::tasks
