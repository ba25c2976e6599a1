// Command kinds: the operator's programs, named in --kinds and run once per attempt as a child
// process (command/command_attempt.hpp; the protocol is docs/kinds.md). Clients pass `params`,
// any JSON object, and never name a program or an argument.
#include "tasks/task_kind.hpp"

#include "support/json_text.hpp"

#include <boost/asio/this_coro.hpp>

#include <stdexcept>

namespace quiesce::tasks {
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// Only the kind's variables, a PATH and the task's names: never the server's own (its database
// URL, its keys).
std::vector<std::string> child_environment(const command::kind_spec& k, const task_context& ctx) {
  std::vector<std::string> env;
  if (!k.env.count("PATH")) env.emplace_back("PATH=/usr/local/bin:/usr/bin:/bin");
  for (auto& [name, value] : k.env) {
    std::string var = name;
    var += '=';
    var += value;
    env.push_back(std::move(var));
  }
  env.push_back("QUIESCE_TASK_ID=" + ctx.task_id);
  env.push_back("QUIESCE_ATTEMPT=" + std::to_string(ctx.attempt));
  env.push_back("QUIESCE_KIND=" + ctx.kind);
  return env;
}

command::attempt_request attempt_of(const command::kind_spec& k, const task_context& ctx) {
  command::attempt_request r;
  r.spawn = {k.command, k.cwd, child_environment(k, ctx)};
  json::object input{{"task_id", ctx.task_id},
                     {"kind", ctx.kind},
                     {"attempt", ctx.attempt},
                     {"params", ctx.params.get()},
                     {"checkpoint", ctx.checkpoint}};
  r.input = support::json_text(input) + "\n";
  r.task_id = ctx.task_id;
  r.timeout = ctx.timeout ? std::min(*ctx.timeout, k.timeout) : k.timeout;
  r.kill_grace = k.kill_grace;
  return r;
}

// The error of an attempt that did not succeed: "exit 3: <its last stderr line>", "killed by
// SIGSEGV", "timed out after 600 s".
std::string failure_of(const command::attempt_end& end, std::chrono::milliseconds timeout) {
  if (end.why == command::attempt_end::cause::timed_out) return timed_out_after(timeout);
  if (end.stderr_last.empty()) return end.verdict;
  return end.verdict + ": " + end.stderr_last;
}

task_kind command_kind(const command::kind_spec& spec, const command::output_limits& limits) {
  task_kind k;
  k.name = spec.name;
  k.max_attempts = spec.max_attempts;
  k.backoff = spec.backoff;
  k.backoff_max = spec.backoff_max;
  k.max_timeout_seconds = std::chrono::duration<double>(spec.timeout).count();
  k.keeps_its_timeout = true;
  k.validate = [](const json::object& p) { return p; };  // the program's to judge
  k.run = [spec, limits](task_context ctx) -> asio::awaitable<json::value> {
    command::channel_handlers on;
    on.progress = [report = ctx.report](double p, std::optional<std::string>) { report(p); };
    on.checkpoint = [save = ctx.save_checkpoint](json::value v) {
      save(std::move(v), std::nullopt);
    };
    auto request = attempt_of(spec, ctx);
    auto timeout = request.timeout;
    auto end = co_await command::run_command(std::move(request), std::move(on), limits);
    if (ctx.output) *ctx.output = std::move(end.output);
    if (!end.succeeded) throw std::runtime_error(failure_of(end, timeout));
    co_return end.result ? std::move(*end.result) : json::value(nullptr);
  };
  return k;
}

}  // namespace

void add_command_kinds(kind_registry& r, const std::vector<command::kind_spec>& specs,
                       const command::output_limits& limits) {
  for (auto& spec : specs) r.add(command_kind(spec, limits));
}

}  // namespace quiesce::tasks
