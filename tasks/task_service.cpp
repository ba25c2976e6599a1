#include "tasks/task_service.hpp"

#include "support/log.hpp"
#include "tasks/task_json.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace quiesce::tasks {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

task_service::task_service(service_settings settings, kind_registry kinds, task_store& store,
                           event_bus& bus, asio::thread_pool& cpu)
    : settings_(settings), kinds_(std::move(kinds)), store_(store), bus_(bus), cpu_(cpu) {}

void task_service::publish(const task_record& t, std::function<void(bool)> on_stored) {
  publish(t, open_event_text(t), std::move(on_stored));
}

void task_service::publish(const task_record& t, std::string event_text,
                           std::function<void(bool)> on_stored) {
  if (observer_) observer_->status_changed(t);
  bus_.publish(t, std::move(event_text), std::move(on_stored));
}

void task_service::publish_progress(const task_record& t) { bus_.publish(t, open_event_text(t)); }

void task_service::publish_requeued(const task_record& t) {
  if (observer_) observer_->status_changed(t);
  bus_.publish(t, open_event_text(t, true));
}

void task_service::admitted(const std::string& id, bool stored) {
  std::shared_ptr<storing> waiting;
  bool last_of_a_drain = false;
  {
    std::lock_guard lock(mutex_);
    auto it = storing_.find(id);
    waiting = std::move(it->second);
    waiting->stored = stored;
    storing_.erase(it);
    if (stored) {
      queue_.add(id, waiting->priority, waiting->run_at);
    } else {
      store_.erase(id);
    }
    last_of_a_drain = !accepting_ && storing_.empty();
  }
  // One more task is for one worker. The last admission of a drain may also finish the queue:
  // every idle worker must then see that and stop.
  if (last_of_a_drain)
    work_available_.notify_all();
  else if (stored)
    work_available_.notify_one();
  // A drain waiting for idle counts admissions being stored.
  task_ended_.notify_all();
  if (waiting->run_at) schedule_changed_.notify_all();
  waiting->answered.notify_all();
}

admission task_service::enqueue(std::string_view kind, const boost::json::object& params,
                                std::optional<std::string> idempotency_key,
                                const job_options& options) {
  auto t = admitted_task(kinds_, kind, params, std::move(idempotency_key), options);

  std::unique_lock lock(mutex_);
  if (t.idempotency_key)
    if (auto existing = store_.find_by_idempotency_key(*t.idempotency_key)) {
      lock.unlock();
      auto text = task_text(*existing);
      return {admit_outcome::replayed, std::move(existing), std::move(text)};
    }
  if (!accepting_) return {admit_outcome::closed, std::nullopt};
  if (queue_.size() + storing_.size() >= settings_.queue_capacity)
    return {admit_outcome::queue_full, std::nullopt};

  store_.insert(t);
  auto waiting = std::make_shared<storing>();
  waiting->priority = t.priority;
  if (t.status == task_status::scheduled) waiting->run_at = t.run_at;
  storing_.emplace(t.id, std::move(waiting));
  // A worker sees the task only once its `queued` event is stored (and delivered), so
  // `queued` always precedes `running`. Without a journal that is before publish() returns.
  lock.unlock();
  // The answer and the event share the record's text: it is made once.
  auto event = open_task_text(t);  // reserved for the keys an event adds
  std::string text;
  text.reserve(event.size() + 1);
  text = event;
  text += '}';
  add_event_keys(event);
  publish(t, std::move(event), [this, id = t.id](bool stored) { admitted(id, stored); });
  return {admit_outcome::created, std::move(t), std::move(text)};
}

asio::awaitable<bool> task_service::wait_stored(std::string id) {
  std::shared_ptr<storing> waiting;
  {
    std::lock_guard lock(mutex_);
    auto it = storing_.find(id);
    if (it == storing_.end()) co_return store_.contains(id);  // answered already
    waiting = it->second;
  }
  co_await waiting->answered.wait_until([&] {
    std::lock_guard lock(mutex_);
    return waiting->stored.has_value();
  });
  std::lock_guard lock(mutex_);
  co_return *waiting->stored;
}

void task_service::recover(const std::vector<task_record>& unfinished) {
  std::size_t rescued = 0;
  for (auto t : unfinished) {
    if (t.status == task_status::running) {
      t.requeue("the process running it stopped before it ended");
      store_.update(t);
      publish_requeued(t);
      ++rescued;
    }
    std::lock_guard lock(mutex_);
    queue_.add(t.id, t.priority, t.status == task_status::scheduled ? t.run_at : std::nullopt);
  }
  if (!unfinished.empty())
    log::always("tasks recovered", {{"queued", unfinished.size() - rescued}, {"rescued", rescued}});
}

std::optional<task_record> task_service::peek(std::string_view id) const { return store_.get(id); }

asio::awaitable<admission> task_service::admit(std::string kind, boost::json::object params,
                                               std::optional<std::string> idempotency_key,
                                               job_options options) {
  auto a = enqueue(kind, params, std::move(idempotency_key), options);
  // A replay too: its key may name a task whose own admission is still being stored.
  if ((a.outcome == admit_outcome::created || a.outcome == admit_outcome::replayed) &&
      !co_await wait_stored(a.task->id))
    co_return admission{admit_outcome::unavailable, std::nullopt};
  co_return a;
}

// Reads answer from memory, where a change lands before the journal has stored it: waiting
// until what was published so far is stored (a commit or two) means a GET never shows a state a
// crash could undo, as the event stream never does. Bounded: a failing disk must not hang it.
asio::awaitable<std::optional<task_record>> task_service::find(std::string id) {
  if (!bus_.settled()) {  // always settled with --store memory: no timer on that path
    asio::steady_timer bound(co_await asio::this_coro::executor, std::chrono::seconds(1));
    co_await (bus_.flush() || bound.async_wait(asio::use_awaitable));
  }
  co_return peek(id);
}

asio::awaitable<task_counts> task_service::read_counts() { co_return known_counts(); }

asio::awaitable<std::pair<cancel_outcome, std::optional<task_record>>> task_service::cancel(
    std::string id) {
  for (;;) {
    std::unique_lock lock(mutex_);
    auto t = store_.get(id);
    if (!t) co_return std::pair{cancel_outcome::not_found, std::nullopt};
    if (is_final(t->status)) co_return std::pair{cancel_outcome::already_finished, std::move(t)};
    if (storing_.contains(id)) {
      // Its `queued` event is out but not yet stored: once it is, the task is queued (or gone).
      lock.unlock();
      co_await wait_stored(id);
      continue;
    }
    if (auto r = running_.find(id); r != running_.end()) {
      r->second.request_abort();
      break;
    }
    // Queued or scheduled: in this queue, or left in the store for a restart after the deadline.
    queue_.erase(id);
    t->move_to(task_status::cancelled);
    store_.update(*t);
    publish(*t);
    lock.unlock();
    task_ended_.notify_all();
    co_return std::pair{cancel_outcome::cancelled, std::move(t)};
  }
  // The worker ends the task within one timer tick or one CPU chunk.
  std::optional<task_record> t;
  co_await task_ended_.wait_until([&] {
    t = store_.get(id);
    return !t || is_final(t->status);
  });
  if (!t) co_return std::pair{cancel_outcome::not_found, std::nullopt};  // ended and forgotten
  co_return std::pair{t->status == task_status::cancelled ? cancel_outcome::cancelled
                                                          : cancel_outcome::already_finished,
                      std::move(t)};
}

asio::awaitable<std::pair<retry_outcome, std::optional<task_record>>> task_service::retry(
    std::string id) {
  std::optional<task_record> t;
  {
    std::lock_guard lock(mutex_);
    t = store_.get(id);
    if (!t) co_return std::pair{retry_outcome::not_found, std::nullopt};
    if (!can_move(t->status, task_status::queued) || t->status == task_status::scheduled)
      co_return std::pair{retry_outcome::not_retriable, std::move(t)};
    if (!accepting_) co_return std::pair{retry_outcome::closed, std::nullopt};
    if (queue_.size() + storing_.size() >= settings_.queue_capacity)
      co_return std::pair{retry_outcome::queue_full, std::nullopt};
    t->rerun();
    store_.update(*t);
    publish(*t);
    queue_.push(t->id, t->priority);
  }
  work_available_.notify_one();
  co_await find(id);  // answered once stored, as a GET would read it
  co_return std::pair{retry_outcome::retried, std::move(t)};
}

task_counts task_service::known_counts() const {
  task_counts c;
  {
    std::lock_guard lock(mutex_);
    c.queued = queue_.runnable();
    c.scheduled = queue_.scheduled();
    c.running = running_.size();
  }
  c.capacity = settings_.queue_capacity;
  c.by_status = store_.count_by_status();
  return c;
}

void task_service::stop_admission() {
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
  }
  // Idle workers wake, see an empty closed queue, and stop; scheduling stops.
  work_available_.notify_all();
  schedule_changed_.notify_all();
}

bool task_service::accepting() const {
  std::lock_guard lock(mutex_);
  return accepting_;
}

asio::awaitable<void> task_service::wait_idle() {
  co_await task_ended_.wait_until([this] {
    std::lock_guard lock(mutex_);
    return queue_.runnable() == 0 && running_.empty() && storing_.empty();
  });
  // Streams close after this: their last events must be out first.
  co_await bus_.flush();
}

asio::awaitable<void> task_service::interrupt_queued() {
  {
    std::lock_guard lock(mutex_);
    auto ids = queue_.runnable_ids();
    // Scheduled tasks wait in a durable store for the next process, as they are; without one
    // they end here with the queued.
    if (!settings_.requeue_on_shutdown)
      for (auto& id : queue_.scheduled_ids()) ids.push_back(id);
    for (auto& id : ids) {
      auto t = store_.get(id);
      if (settings_.requeue_on_shutdown) {
        // Still queued in the store: the next process runs it. Its subscribers learn why.
        t->requeue("the server shut down before it started; it runs after a restart");
        store_.update(*t);
        publish_requeued(*t);
        continue;
      }
      t->move_to(task_status::interrupted);
      t->error = "the server shut down before the task started";
      store_.update(*t);
      publish(*t);
    }
    if (!ids.empty())
      log::warn(settings_.requeue_on_shutdown ? "queued tasks left for a restart"
                                              : "queued tasks interrupted",
                {{"count", ids.size()}});
    queue_.clear_runnable();
  }
  task_ended_.notify_all();
  co_await bus_.flush();
}

}  // namespace quiesce::tasks
