#include "tasks/pg/shared_events.hpp"

#include "support/json_text.hpp"
#include "tasks/event_bus.hpp"
#include "tasks/pg/rows.hpp"
#include "tasks/pg/schema.hpp"
#include "tasks/task_json.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>

namespace quiesce::tasks::pg {
namespace asio = boost::asio;

std::string event_columns() { return "seq, requeued, " + task_columns(); }

event_ptr read_event(const result& r, int row, int first) {
  auto seq = static_cast<std::uint64_t>(r.integer(row, first));
  auto t = read_task(r, row, first + 2);
  auto body = open_event_text(t, r.get(row, first + 1) == "t");
  close_with_seq(body, seq);
  return std::make_shared<const stream_event>(stream_event{seq, std::move(t.id), std::move(body)});
}

bool ends_its_task(const result& r, int row, int first) {
  auto status = r.get(row, first + 5);  // seq, requeued, id, kind, params, status
  return status != to_string(task_status::queued) && status != to_string(task_status::running);
}

event_ptr gap_event(std::uint64_t last_missing, const std::string& epoch) {
  return std::make_shared<const stream_event>(
      stream_event{last_missing, {}, support::json_text(gap_message(epoch))});
}

namespace {

asio::awaitable<stream_head> open_and_read(std::string conninfo, std::chrono::milliseconds timeout,
                                           std::size_t retention) {
  // A few replicas may be migrating at once: the lock makes the others wait, so allow longer.
  // One connection for the schema and the head: start-up connects once.
  const auto patient = std::max(timeout * 6, std::chrono::milliseconds(30000));
  auto c = co_await connection::open(conninfo, patient);
  co_await migrate(*c, patient);
  stream_head head;
  // One statement, one snapshot: the window and the last seq agree.
  std::vector<param> args;
  args.emplace_back(std::to_string(retention));
  auto r = co_await c->exec(
      "SELECT c.epoch, c.last_seq, e.* FROM quiesce_event_counter c "
      "LEFT JOIN LATERAL (SELECT " +
          event_columns() +
          " FROM quiesce_events ORDER BY seq DESC LIMIT $1) e ON true "
          "ORDER BY e.seq",
      args, timeout);
  head.epoch = r.get(0, 0);
  head.last_seq = static_cast<std::uint64_t>(r.integer(0, 1));
  for (int i = 0; i < r.rows(); ++i)
    if (!r.null(i, 2)) head.events.push_back(read_event(r, i, 2));
  co_return head;
}

}  // namespace

stream_head open_database(const std::string& conninfo, std::chrono::milliseconds timeout,
                          std::size_t retention) {
  asio::io_context io(1);
  std::exception_ptr failed;
  stream_head head;
  asio::co_spawn(io, open_and_read(conninfo, timeout, retention),
                 [&](std::exception_ptr e, stream_head h) {
                   failed = e;
                   head = std::move(h);
                 });
  io.run();
  if (failed) std::rethrow_exception(failed);
  return head;
}

}  // namespace quiesce::tasks::pg
