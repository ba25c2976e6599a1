// What the other replicas tell this one: one connection LISTENs for new work, cancellations and
// new events; the follower reads the events in seq order for this replica's streams.
#include "support/log.hpp"
#include "tasks/pg/naps.hpp"
#include "tasks/pg/shared_events.hpp"
#include "tasks/pg/shared_service.hpp"

#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace quiesce::tasks::pg {
namespace asio = boost::asio;

// One connection LISTENs for new work and for cancellations. After every (re)connect the
// claimer looks at the queue, so a notification sent while we were away is not missed.
asio::awaitable<void> shared_service::listener() {
  retry_backoff backoff;
  try {
    for (;;) {
      const auto began = std::chrono::steady_clock::now();
      bool listening = false;
      try {
        auto c = co_await connection::open(settings_.conninfo, settings_.timeout);
        co_await c->script("LISTEN quiesce_work; LISTEN quiesce_cancel; LISTEN quiesce_events",
                           settings_.timeout);
        listening = true;
        health(true, began, {});
        backoff.succeeded();
        wake_claimer();
        reread_schedule();
        wake_follower();  // what was written while we were away
        beat_soon();      // cancels asked while we were away come with the renewal
        for (;;) {
          for (auto& n : co_await c->notifications()) {
            if (n.channel == "quiesce_events")
              wake_follower();
            else if (n.channel == "quiesce_work") {
              wake_claimer();
              if (!n.payload.empty()) note_scheduled(n.payload);
            } else if (n.channel == "quiesce_cancel")
              stop_run(n.payload, false);
          }
        }
      } catch (const db_error& e) {
        // A loss while listening is news now; a failed (re)connect began with the attempt.
        if (e.lost) health(false, listening ? pool::clock::now() : began, e.what());
      }
      co_await back_off(backoff.failed());
    }
  } catch (const boost::system::system_error&) {
    // The end of the process.
  }
}

// Reads what the service wrote since the last read, in seq order, and hands it to this replica's
// streams. Woken by each commit's notification and after every reconnect of the listener, so a
// lost connection loses nothing: the next read starts after the last seq delivered.
asio::awaitable<void> shared_service::follow_events() {
  static const std::string newer =
      "SELECT " + event_columns() + " FROM quiesce_events WHERE seq > $1 ORDER BY seq LIMIT 1000";
  constexpr int batch = 1000;
  retry_backoff backoff;
  try {
    for (;;) {
      if (!events_wanted_) {
        co_await nap(follower_wake_, std::nullopt);
        continue;
      }
      events_wanted_ = false;
      std::uint64_t after = bus_.last_seq();
      bool failed = false;
      try {
        auto r = co_await pool_.exec(newer, std::to_string(after));
        std::vector<event_ptr> got;
        got.reserve(static_cast<std::size_t>(r.rows()));
        for (int i = 0; i < r.rows(); ++i) {
          got.push_back(read_event(r, i));
          if (!awaited_ends_.empty() && ends_its_task(r, i)) ended(got.back()->task_id);
        }
        if (!got.empty() && got.front()->seq != after + 1) {
          log::warn(
              "events left the database before this replica read them: its streams are told gap",
              {{"after", after}, {"next", got.front()->seq}});
          got.insert(got.begin(), gap_event(got.front()->seq - 1, bus_.epoch()));
        }
        if (!got.empty()) bus_.deliver(got, got.back()->seq);
        if (r.rows() == batch) events_wanted_ = true;
        backoff.succeeded();
      } catch (const db_error&) {
        failed = true;  // the pool told the health of it
      }
      if (failed) {
        events_wanted_ = true;
        co_await nap(follower_wake_, backoff.failed());
      }
    }
  } catch (const boost::system::system_error&) {
    // The end of the process.
  }
}

}  // namespace quiesce::tasks::pg
