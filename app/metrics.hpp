// The Prometheus metrics of /metrics, kept with prometheus-cpp's core library: counters and
// histograms are updated where things happen; gauges of current state are read at each scrape.
#pragma once

#include "tasks/task_observer.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace quiesce::app {

struct app_state;

class metrics final : public tasks::task_observer {
 public:
  explicit metrics(const std::vector<std::string>& kinds);

  void status_changed(const tasks::task_record& t) override;
  // One answered HTTP request. `route` is the route's template ("/v1/tasks/{task_id}"), never the
  // raw path, so that a client cannot create series; unknown paths are "other".
  void http_answered(std::string_view route, unsigned code, std::chrono::steady_clock::duration d);

  // The text exposition format 0.0.4, gauges read from `s` now.
  std::string scrape(const app_state& s);

 private:
  struct per_kind {
    std::array<prometheus::Counter*, tasks::status_count> reached{};
    prometheus::Histogram* queue_wait = nullptr;
    prometheus::Histogram* duration = nullptr;
  };

  prometheus::Registry registry_;
  prometheus::Family<prometheus::Counter>& tasks_total_;
  prometheus::Family<prometheus::Histogram>& queue_wait_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& http_latency_;
  prometheus::Family<prometheus::Gauge>& tasks_;
  prometheus::Gauge &queue_depth_, &queue_capacity_, &running_, &websockets_, &connections_;
  prometheus::Counter &refused_, &published_, &sent_, &dropped_slow_;
  prometheus::Gauge &store_healthy_, &since_signal_, &seconds_left_;
  prometheus::Family<prometheus::Gauge>& phase_;
  std::map<std::string, per_kind, std::less<>> kinds_;  // filled in the constructor, then read
  // The series of each route met so far: a family's Add() would build a label map and hash it
  // on every request (measured: +12 % instructions for a GET /v1/health).
  struct route_series {
    prometheus::Histogram* latency = nullptr;
    std::map<unsigned, prometheus::Counter*> by_code;
  };
  std::mutex routes_mutex_;
  std::map<std::string, route_series, std::less<>> routes_;
  std::mutex scrape_mutex_;  // two scrapes at once must not both catch a counter up
};

}  // namespace quiesce::app
