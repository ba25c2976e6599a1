#include "tasks/store.hpp"

#include "support/log.hpp"
#include "tasks/local_store.hpp"
#include "tasks/pg/connection.hpp"
#include "tasks/pg/shared_events.hpp"
#include "tasks/pg/shared_store.hpp"

namespace quiesce::tasks {
namespace {

// sqlite: the journal makes every change durable before it is delivered.
std::unique_ptr<store> open_sqlite(const store_settings& s, kind_registry kinds,
                                   boost::asio::thread_pool& cpu) {
  try {
    return std::make_unique<local_store>(s, std::move(kinds), cpu);
  } catch (const storage_error& e) {
    log::error("cannot open the task store", {{"file", e.file}, {"error", e.what()}});
    throw store_unusable(e.what());
  }
}

// postgres: the database numbers the service's events, so the bus starts where the service's
// stream is.
std::unique_ptr<store> open_postgres(const store_settings& s, kind_registry kinds,
                                     boost::asio::thread_pool& cpu) {
  if (auto bad = pg::conninfo_error(s.shared.conninfo)) {
    log::error("cannot open the task store", {{"database_url", "invalid"}, {"error", *bad}});
    throw store_unusable(*bad);
  }
  try {
    auto head = pg::open_database(s.shared.conninfo, s.shared.timeout, s.event_retention);
    return std::make_unique<pg::shared_store>(s, std::move(kinds), cpu, std::move(head));
  } catch (const std::exception& e) {
    log::error("cannot open the task store", {{"store", "postgres"}, {"error", e.what()}});
    throw store_unusable(e.what());
  }
}

}  // namespace

std::unique_ptr<store> open_store(const store_settings& s, kind_registry kinds,
                                  boost::asio::thread_pool& cpu) {
  switch (s.kind) {
    case store_kind::sqlite:
      return open_sqlite(s, std::move(kinds), cpu);
    case store_kind::postgres:
      return open_postgres(s, std::move(kinds), cpu);
    case store_kind::memory:
      break;
  }
  return std::make_unique<local_store>(s, std::move(kinds), cpu);
}

}  // namespace quiesce::tasks
