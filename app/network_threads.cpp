#include "app/network_threads.hpp"

#include <thread>

namespace quiesce::app {
namespace asio = boost::asio;

network_threads::network_threads(unsigned count) {
  for (unsigned i = 0; i < std::max(count, 1u); ++i)
    contexts_.push_back(std::make_unique<owned_context>(1));  // each run by one thread
}

lifecycle::executor_source network_threads::strands() {
  return [this]() -> asio::any_io_executor {
    auto i = next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size();
    // One thread runs each context, so its executor is a strand already: an asio::strand on
    // top of it took a lock of its own and queued every handler once more.
    return contexts_[i]->get_executor();
  };
}

void network_threads::run() {
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
  for (auto& c : contexts_) keep_running.push_back(asio::make_work_guard(*c));
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < contexts_.size(); ++i)
    threads.emplace_back([c = contexts_[i].get()] { c->run(); });
  contexts_.front()->run();
  for (auto& t : threads) t.join();
}

void network_threads::stop() {
  for (auto& c : contexts_) c->stop();
}

void network_threads::shutdown() {
  for (auto& c : contexts_) c->shutdown();
}

}  // namespace quiesce::app
