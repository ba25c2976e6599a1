// The local queue's order (task_service): runnable tasks by priority, then arrival, and the
// scheduled ones by the time they become runnable. Not thread-safe: task_service's lock guards it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace quiesce::tasks {

class run_queue {
 public:
  using time_point = std::chrono::system_clock::time_point;

  // Runnable now: behind every task of a lower or equal priority number already here.
  void push(const std::string& id, int priority);
  // Runnable at `at`, with `priority` then.
  void schedule(const std::string& id, int priority, time_point at);
  // push(), or schedule() for a task that has a run_at still to come.
  void add(const std::string& id, int priority, const std::optional<time_point>& run_at);
  // The next runnable task (the lowest priority number, the oldest of those); none if empty.
  std::optional<std::string> pop();
  // Takes `id` out, runnable or scheduled; whether it was here.
  bool erase(const std::string& id);
  // Every scheduled task due at `now` becomes runnable; returns their ids, earliest first.
  std::vector<std::string> promote_due(time_point now);
  std::optional<time_point> next_due() const;

  std::size_t runnable() const { return runnable_.size(); }
  std::size_t size() const { return runnable_.size() + scheduled_.size(); }
  std::size_t scheduled() const { return scheduled_.size(); }
  std::vector<std::string> runnable_ids() const;   // in the order pop() gives them
  std::vector<std::string> scheduled_ids() const;  // earliest first
  void clear_runnable();

 private:
  using order = std::pair<int, std::uint64_t>;  // priority, arrival
  std::map<order, std::string> runnable_;
  std::unordered_map<std::string, order> runnable_at_;
  struct waiting {
    std::string id;
    int priority;
  };
  std::multimap<time_point, waiting> scheduled_;
  std::unordered_map<std::string, std::multimap<time_point, waiting>::iterator> scheduled_at_;
  std::uint64_t arrivals_ = 0;
};

}  // namespace quiesce::tasks
