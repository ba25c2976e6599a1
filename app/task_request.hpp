// What POST /v1/tasks asks for, read from the request: the kind, its parameters (flat beside the
// kind, or in `params`), the job options and the Idempotency-Key; or the 4xx that says why not.
#pragma once

#include "net/http.hpp"
#include "tasks/task.hpp"

#include <boost/json/object.hpp>

#include <optional>
#include <string>
#include <variant>

namespace quiesce::app {

struct task_request {
  std::string kind = "sleep";
  boost::json::object params;
  tasks::job_options options;
  std::optional<std::string> key;  // Idempotency-Key
};

// A plain function, not the coroutine's body: every local of a coroutine lives in its frame, and
// with these in it post_task's frame was 1,600 bytes, past what Asio's per-thread cache recycles
// (1,020), so each POST took a large block from malloc and made it consolidate its fast bins.
std::variant<task_request, net::response> read_task_request(const net::request& req);

}  // namespace quiesce::app
