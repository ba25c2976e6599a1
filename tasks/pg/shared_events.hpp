// The service's one event stream, as the database numbers it (schema version 2): reading the
// stored events back, and where a replica's bus starts.
#pragma once

#include "tasks/pg/connection.hpp"
#include "tasks/task_journal.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace quiesce::tasks::pg {

// The stream as stored: the database's epoch, its last seq and its newest events, oldest first.
struct stream_head {
  std::string epoch;
  std::uint64_t last_seq = 0;
  std::vector<event_ptr> events;
};

// The columns read_event() expects, in order.
std::string event_columns();
// The frame of the event at `row`, its columns starting at `first`: a task event, the same text
// on every replica.
event_ptr read_event(const result& r, int row, int first = 0);
// Whether the event at `row` (columns from `first`) is its task's end: a final status.
bool ends_its_task(const result& r, int row, int first = 0);
// Stands for the events up to `last_missing` that left the database before this replica read
// them: every stream is told `gap` (re-read task state over HTTP), in its place in the order.
event_ptr gap_event(std::uint64_t last_missing, const std::string& epoch);

// Creates or migrates the schema and reads the stream's head, on the calling thread (start-up,
// before the bus exists). Throws what migrate() throws.
stream_head open_database(const std::string& conninfo, std::chrono::milliseconds timeout,
                          std::size_t retention);

}  // namespace quiesce::tasks::pg
