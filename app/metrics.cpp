#include "app/metrics.hpp"

#include "app/app_state.hpp"

#include <prometheus/text_serializer.h>

namespace quiesce::app {
namespace p = prometheus;

namespace {

using seconds = std::chrono::duration<double>;

// Buckets: tasks last seconds to an hour (--max-task-seconds); requests take microseconds to a
// second (a POST waits for its commit).
const p::Histogram::BucketBoundaries task_buckets{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};
const p::Histogram::BucketBoundaries wait_buckets{0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300};
const p::Histogram::BucketBoundaries http_buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                  0.05,   0.1,   0.25,   0.5,   1,    2.5};

// A family of metrics (a series per label set), from p::BuildCounter(), BuildGauge(), ...
template <class Builder>
auto& family(Builder build, p::Registry& r, const char* name, const char* help) {
  return build.Name(name).Help(help).Register(r);
}
p::Gauge& gauge(p::Registry& r, const char* name, const char* help) {
  return family(p::BuildGauge(), r, name, help).Add({});
}
p::Counter& counter(p::Registry& r, const char* name, const char* help) {
  return family(p::BuildCounter(), r, name, help).Add({});
}
// Counters kept elsewhere as plain totals move up to them at each scrape.
void catch_up(p::Counter& c, std::uint64_t total) {
  auto now = static_cast<double>(total);
  if (now > c.Value()) c.Increment(now - c.Value());
}
double in_seconds(std::optional<std::chrono::steady_clock::duration> d) {
  return d ? seconds(*d).count() : -1.0;
}

}  // namespace

metrics::metrics(const std::vector<std::string>& kinds)
    : tasks_total_(
          family(p::BuildCounter(), registry_, "quiesce_tasks_total",
                 "Statuses tasks reached, by kind (a requeued task counts queued again).")),
      queue_wait_(family(p::BuildHistogram(), registry_, "quiesce_task_queue_wait_seconds",
                         "Time from a task's creation to its start, by kind.")),
      duration_(family(p::BuildHistogram(), registry_, "quiesce_task_duration_seconds",
                       "Time from a task's start to its end, by kind.")),
      http_requests_(family(p::BuildCounter(), registry_, "quiesce_http_requests_total",
                            "HTTP requests answered, by route and status code.")),
      http_latency_(family(p::BuildHistogram(), registry_, "quiesce_http_request_duration_seconds",
                           "Time from a request's arrival to its answer, by route.")),
      tasks_(family(p::BuildGauge(), registry_, "quiesce_tasks",
                    "Tasks this process knows, by status.")),
      queue_depth_(gauge(registry_, "quiesce_queue_depth", "Tasks waiting for a worker.")),
      queue_capacity_(gauge(registry_, "quiesce_queue_capacity",
                            "Tasks the queue holds before POST answers 429.")),
      running_(gauge(registry_, "quiesce_tasks_running", "Tasks being run by a worker.")),
      websockets_(gauge(registry_, "quiesce_websockets_open", "Open WebSocket event streams.")),
      connections_(
          gauge(registry_, "quiesce_connections_open", "Open connections on the public port.")),
      refused_(counter(registry_, "quiesce_connections_refused_total",
                       "Connections reset at accept because --max-connections were open.")),
      published_(counter(registry_, "quiesce_events_published_total", "Task events published.")),
      sent_(counter(registry_, "quiesce_events_sent_total",
                    "Messages written to WebSocket streams: hello, replayed and live events, gap, "
                    "draining.")),
      dropped_slow_(counter(registry_, "quiesce_websockets_dropped_slow_total",
                            "Streams closed 1013 for not keeping up.")),
      store_healthy_(gauge(registry_, "quiesce_store_healthy",
                           "1 if the last write to the task store succeeded (1 with --store "
                           "memory).")),
      since_signal_(gauge(registry_, "quiesce_drain_seconds_since_signal",
                          "Seconds since the signal that started the drain (-1: none).")),
      seconds_left_(gauge(registry_, "quiesce_drain_seconds_left",
                          "Seconds before the shutdown deadline (-1: no drain).")),
      phase_(family(p::BuildGauge(), registry_, "quiesce_drain_phase",
                    "1 for the phase the process is in, 0 for the others.")) {
  // Every series exists from the start (a rate() needs the zero), and the hot paths only find
  // their counters here instead of asking the family, which locks.
  for (const auto& k : kinds) {
    auto& pk = kinds_[k];
    for (std::size_t i = 0; i < tasks::status_count; ++i)
      pk.reached[i] = &tasks_total_.Add(
          {{"kind", k}, {"status", std::string(to_string(static_cast<tasks::task_status>(i)))}});
    pk.queue_wait = &queue_wait_.Add({{"kind", k}}, wait_buckets);
    pk.duration = &duration_.Add({{"kind", k}}, task_buckets);
  }
}

void metrics::status_changed(const tasks::task_record& t) {
  // Every kind was registered in the constructor; a task only exists with a registered kind.
  auto it = kinds_.find(t.kind);
  if (it == kinds_.end()) return;
  auto& k = it->second;
  k.reached[static_cast<std::size_t>(t.status)]->Increment();
  if (t.status == tasks::task_status::running && t.started_at)
    k.queue_wait->Observe(seconds(*t.started_at - t.created_at).count());
  if (tasks::is_final(t.status) && t.started_at && t.finished_at)
    k.duration->Observe(seconds(*t.finished_at - *t.started_at).count());
}

void metrics::http_answered(std::string_view route, unsigned code,
                            std::chrono::steady_clock::duration d) {
  p::Counter* requests = nullptr;
  p::Histogram* latency = nullptr;
  {
    std::lock_guard lock(routes_mutex_);
    auto r = routes_.find(route);
    if (r == routes_.end())
      r = routes_
              .emplace(route,
                       route_series{
                           &http_latency_.Add({{"route", std::string(route)}}, http_buckets), {}})
              .first;
    auto c = r->second.by_code.find(code);
    if (c == r->second.by_code.end())
      c = r->second.by_code
              .emplace(code, &http_requests_.Add(
                                 {{"route", std::string(route)}, {"code", std::to_string(code)}}))
              .first;
    requests = c->second;
    latency = r->second.latency;
  }
  requests->Increment();
  latency->Observe(seconds(d).count());
}

std::string metrics::scrape(const app_state& s) {
  std::lock_guard lock(scrape_mutex_);
  auto c = s.tasks.known_counts();
  for (std::size_t i = 0; i < tasks::status_count; ++i)
    tasks_.Add({{"status", std::string(to_string(static_cast<tasks::task_status>(i)))}})
        .Set(static_cast<double>(c.by_status[i]));
  queue_depth_.Set(static_cast<double>(c.queued));
  queue_capacity_.Set(static_cast<double>(c.capacity));
  running_.Set(static_cast<double>(c.running));
  websockets_.Set(static_cast<double>(s.streams.open()));
  connections_.Set(static_cast<double>(s.connections.open()));
  catch_up(refused_, s.connections.refused());
  catch_up(published_, s.bus.published());
  catch_up(sent_, s.streams.sent());
  catch_up(dropped_slow_, s.streams.dropped_slow());
  store_healthy_.Set(s.tasks.store_healthy() ? 1 : 0);
  for (auto ph : {lifecycle::phase::running, lifecycle::phase::draining, lifecycle::phase::closing,
                  lifecycle::phase::terminating, lifecycle::phase::stopped})
    phase_.Add({{"phase", std::string(lifecycle::to_string(ph))}})
        .Set(s.phase.current() == ph ? 1 : 0);
  since_signal_.Set(in_seconds(s.phase.since_signal()));
  seconds_left_.Set(in_seconds(s.phase.until_deadline()));
  return p::TextSerializer().Serialize(registry_.Collect());
}

}  // namespace quiesce::app
