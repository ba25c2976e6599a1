// libpq's asynchronous API on Asio. Two facts shape it:
// - Asio's epoll reactor is edge-triggered and async_wait is never speculative: readiness that is
//   reported while no wait is queued is dropped. libpq may leave bytes in the kernel, so before
//   every wait we let libpq read (PQconsumeInput) and look again; and everything runs on one
//   thread, so no epoll_wait can run between that look and queueing the wait: an arrival after
//   the look is reported after the wait is queued.
// - The socket may change during PQconnectPoll (another host, SSL retry): each step wraps the
//   current one afresh and release()s it before the next, so Asio never closes libpq's socket.
#include "tasks/pg/connection.hpp"

#include "support/log.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <libpq-fe.h>
#include <poll.h>

#include <charconv>

namespace quiesce::tasks::pg {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using clock = std::chrono::steady_clock;
using wait_type = asio::posix::descriptor_base::wait_type;

namespace {

std::string trimmed(const char* message) {
  std::string m = message ? message : "";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

// Waits for `w` on `sock` until `until`; false when the time ran out.
asio::awaitable<bool> ready(asio::posix::stream_descriptor& sock, wait_type w,
                            std::optional<clock::time_point> until) {
  if (!until) {
    co_await sock.async_wait(w, asio::use_awaitable);
    co_return true;
  }
  asio::steady_timer timer(co_await asio::this_coro::executor, *until);
  auto which =
      co_await (sock.async_wait(w, asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
  co_return which.index() == 0;
}

bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

result::result(pg_result* r) : r_(r, PQclear) {}
int result::rows() const { return r_ ? PQntuples(r_.get()) : 0; }
int result::affected() const {
  if (!r_) return 0;
  std::string_view n = PQcmdTuples(r_.get());
  int v = 0;
  std::from_chars(n.data(), n.data() + n.size(), v);
  return v;
}
bool result::null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
std::string_view result::get(int row, int col) const {
  return {PQgetvalue(r_.get(), row, col),
          static_cast<std::size_t>(PQgetlength(r_.get(), row, col))};
}
std::int64_t result::integer(int row, int col) const {
  auto text = get(row, col);
  std::int64_t v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

std::optional<std::string> conninfo_error(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts) {
    PQconninfoFree(opts);
    return std::nullopt;
  }
  std::string why = err ? trimmed(err) : "out of memory";
  PQfreemem(err);
  return why;
}

connection::connection(pg_conn* c, const asio::any_io_executor& ex) : conn_(c), socket_(ex) {
  socket_.assign(PQsocket(conn_));
  // Notices (a server shutting down, a NOTICE from a statement) go to our log, not to stderr.
  PQsetNoticeProcessor(
      conn_,
      [](void*, const char* message) {
        log::debug("postgres notice", {{"message", trimmed(message)}});
      },
      nullptr);
}

connection::~connection() {
  // libpq owns the descriptor: Asio lets go of it (deregisters, does not close) first.
  if (socket_.is_open()) socket_.release();
  PQfinish(conn_);
}

asio::awaitable<std::unique_ptr<connection>> connection::open(std::string conninfo,
                                                              std::chrono::milliseconds timeout) {
  auto ex = co_await asio::this_coro::executor;
  auto until = clock::now() + timeout;
  // Our defaults first, the caller's string last: what it says wins (libpq's rule for repeated
  // keywords). Keepalives find a silently dead peer (a partition) in about 10 s.
  const char* keys[] = {"application_name",
                        "keepalives",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "dbname",
                        nullptr};
  const char* values[] = {"quiesce", "1", "5", "2", "3", conninfo.c_str(), nullptr};
  std::unique_ptr<pg_conn, void (*)(pg_conn*)> c(PQconnectStartParams(keys, values, 1), PQfinish);
  if (!c) throw db_error("cannot allocate a PostgreSQL connection", true);
  if (PQstatus(c.get()) == CONNECTION_BAD) throw db_error(trimmed(PQerrorMessage(c.get())), true);
  auto poll = PGRES_POLLING_WRITING;
  while (poll != PGRES_POLLING_OK) {
    if (poll == PGRES_POLLING_FAILED) throw db_error(trimmed(PQerrorMessage(c.get())), true);
    asio::posix::stream_descriptor sock(ex, PQsocket(c.get()));
    bool ok = false;
    try {
      ok = co_await ready(
          sock, poll == PGRES_POLLING_READING ? wait_type::wait_read : wait_type::wait_write,
          until);
    } catch (...) {
      sock.release();
      throw;
    }
    sock.release();
    if (!ok) throw db_error("timed out connecting to PostgreSQL", true);
    poll = PQconnectPoll(c.get());
  }
  if (PQsetnonblocking(c.get(), 1) != 0) throw db_error(trimmed(PQerrorMessage(c.get())), true);
  co_return std::unique_ptr<connection>(new connection(c.release(), ex));
}

db_error connection::lost(const std::string& what) {
  broken_ = true;
  if (socket_.is_open()) socket_.release();
  return db_error(what.empty() ? "the connection to PostgreSQL was lost" : what, true);
}

void connection::take_notifications() {
  while (PGnotify* n = PQnotifies(conn_)) {
    pending_.push_back({n->relname, n->extra ? n->extra : ""});
    PQfreemem(n);
  }
}

asio::awaitable<void> connection::readable(std::optional<clock::time_point> until) {
  if (readable_now(PQsocket(conn_))) co_return;
  bool ok = co_await ready(socket_, wait_type::wait_read, until);
  if (!ok) throw lost("PostgreSQL did not answer in time");
}

asio::awaitable<void> connection::send_and_flush(clock::time_point until) {
  for (;;) {
    int left = PQflush(conn_);
    if (left < 0) throw lost(trimmed(PQerrorMessage(conn_)));
    if (left == 0) co_return;
    // The server may be waiting for us to read before it reads more (libpq's advice).
    if (readable_now(PQsocket(conn_))) {
      if (!PQconsumeInput(conn_)) throw lost(trimmed(PQerrorMessage(conn_)));
      continue;
    }
    bool ok = co_await ready(socket_, wait_type::wait_write, until);
    if (!ok) throw lost("PostgreSQL did not take the query in time");
  }
}

asio::awaitable<result> connection::collect(clock::time_point until) {
  result last;
  std::optional<db_error> refused;
  for (;;) {
    if (!PQconsumeInput(conn_)) throw lost(trimmed(PQerrorMessage(conn_)));
    if (PQisBusy(conn_)) {
      co_await readable(until);
      continue;
    }
    PGresult* r = PQgetResult(conn_);
    if (!r) break;
    auto status = PQresultStatus(r);
    if (status == PGRES_FATAL_ERROR && !refused) {
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      refused.emplace(trimmed(PQresultErrorMessage(r)), false, state ? state : "");
    }
    last = result(r);
  }
  take_notifications();
  if (PQstatus(conn_) == CONNECTION_BAD) throw lost(refused ? refused->what() : "");
  // A server shutting down says so (57P01..57P03, class 08) before it closes: libpq may not
  // have seen the close yet, and the statement must be retried, not taken as refused.
  if (refused && (refused->sqlstate.starts_with("08") || refused->sqlstate.starts_with("57P")))
    throw lost(refused->what());
  if (refused) throw *refused;
  co_return last;
}

asio::awaitable<result> connection::exec(std::string_view sql, const std::vector<param>& params,
                                         std::chrono::milliseconds timeout) {
  if (broken_) throw db_error("the connection to PostgreSQL was lost", true);
  auto until = clock::now() + timeout;
  std::string text(sql);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  if (!PQsendQueryParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                         values.data(), nullptr, nullptr, 0))
    throw lost(trimmed(PQerrorMessage(conn_)));
  co_return co_await finish(until);
}

asio::awaitable<result> connection::finish(clock::time_point until) {
  try {
    co_await send_and_flush(until);
    co_return co_await collect(until);
  } catch (const db_error&) {
    throw;
  } catch (...) {
    // Cancelled half-way: the protocol state is unknown, so the connection is not reused.
    broken_ = true;
    if (socket_.is_open()) socket_.release();
    throw;
  }
}

asio::awaitable<void> connection::script(std::string_view sql, std::chrono::milliseconds timeout) {
  if (broken_) throw db_error("the connection to PostgreSQL was lost", true);
  auto until = clock::now() + timeout;
  std::string text(sql);
  if (!PQsendQuery(conn_, text.c_str())) throw lost(trimmed(PQerrorMessage(conn_)));
  co_await finish(until);
}

asio::awaitable<std::vector<notification>> connection::notifications() {
  for (;;) {
    if (broken_) throw db_error("the connection to PostgreSQL was lost", true);
    if (!PQconsumeInput(conn_)) throw lost(trimmed(PQerrorMessage(conn_)));
    take_notifications();
    if (!pending_.empty()) co_return std::exchange(pending_, {});
    co_await readable(std::nullopt);
  }
}

}  // namespace quiesce::tasks::pg
