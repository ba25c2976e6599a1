// quiesce-cli: submit tasks, follow them live across rolling restarts, read their status.
#include "cli/follower.hpp"
#include "cli/http_client.hpp"
#include "support/json_text.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/program_options.hpp>

#include <unistd.h>

#include <cstdlib>
#include <iostream>

namespace asio = boost::asio;
namespace json = boost::json;
namespace po = boost::program_options;
namespace http = boost::beast::http;
using namespace quiesce::cli;

namespace {

constexpr const char* usage_text = R"(Usage:
  quiesce-cli [--url URL] submit [--kind K] [--seconds S] [--iterations N] [--param NAME=VALUE]...
                                 [--priority P] [--delay S] [--max-attempts N] [--timeout S]
                                 [--idempotency-key KEY] [--follow]
  quiesce-cli [--url URL] retry ID [--follow]
  quiesce-cli [--url URL] watch [--task ID]...
  quiesce-cli [--url URL] status [ID]...

On a terminal --follow and watch draw a progress bar; piped, they print one JSON line per event.
When the stream closes (1012: the server is restarting) they reconnect with backoff and jitter
and catch up. Exit code: 0 every followed task succeeded, 1 one failed, was cancelled or
interrupted, 2 bad arguments, 3 server unreachable or the task lost, 4 the server refused.
)";

struct options {
  std::string command;
  std::vector<std::string> ids;
  std::string url;
  std::string kind;
  std::optional<double> seconds;
  std::optional<double> iterations;
  std::vector<std::string> params;  // NAME=VALUE: VALUE as JSON if it is JSON, else a string
  std::optional<int> priority, max_attempts;
  std::optional<double> delay, timeout;
  std::string idempotency_key;
  bool follow = false;
  follow_settings settings;
};

void print_record(const json::value& v, bool terminal) {
  if (!terminal || !v.is_object()) {
    std::cout << quiesce::support::json_text(v) << '\n';
    return;
  }
  auto& o = v.as_object();
  std::cout << o.at("task_id").as_string().c_str() << ' ' << o.at("kind").as_string().c_str() << ' '
            << o.at("status").as_string().c_str() << ' '
            << static_cast<int>(o.at("progress").to_number<double>() * 100) << " %\n";
}

int refused(const http_answer& a) {
  std::cerr << "quiesce-cli: the server answered " << a.status << ": "
            << quiesce::support::json_text(a.body)
            << (a.retry_after.empty() ? "" : " (retry after " + a.retry_after + " s)") << '\n';
  return refused_code;
}

// The task as POST /v1/tasks takes it: with --param, the parameters go in `params` (the form
// command kinds take); the job options beside them.
json::object task_body(const options& o) {
  json::object body, params;
  if (!o.kind.empty()) body["kind"] = o.kind;
  if (o.seconds) params["seconds"] = *o.seconds;
  if (o.iterations) params["iterations"] = static_cast<std::int64_t>(*o.iterations);
  for (const auto& p : o.params) {
    auto eq = p.find('=');
    json::error_code ec;
    auto value = json::parse(p.substr(eq + 1), ec);
    params[p.substr(0, eq)] = ec ? json::value(p.substr(eq + 1)) : value;
  }
  if (o.params.empty())
    for (auto& [k, v] : params) body[k] = v;
  else
    body["params"] = std::move(params);
  if (o.priority) body["priority"] = *o.priority;
  if (o.max_attempts) body["max_attempts"] = *o.max_attempts;
  if (o.delay) body["delay_seconds"] = *o.delay;
  if (o.timeout) body["timeout_seconds"] = *o.timeout;
  return body;
}

asio::awaitable<int> submit(const options& o, const server_address& at, task_view& view) {
  auto body = task_body(o);
  follower f(at, view, o.settings);
  std::string why;
  // The stream opens first, so that none of the new task's events can pass unseen.
  if (o.follow && !co_await f.open(&why)) {
    view.note(why);
    co_return unreachable;
  }
  auto a = co_await http_call(at, http::verb::post, "/v1/tasks", json::serialize(body), &why,
                              o.idempotency_key);
  if (!a) {
    view.note(why);
    co_return unreachable;
  }
  if (a->status != 202) co_return refused(*a);
  auto id = std::string(a->body.at("task_id").as_string());
  if (!o.follow) {
    if (view.terminal())
      std::cout << "queued " << id << '\n';
    else
      std::cout << quiesce::support::json_text(a->body) << '\n';
    co_return succeeded;
  }
  std::set<std::string> ids{id};  // GCC 12 cannot co_await with a braced list argument
  co_await f.follow(std::move(ids));
  co_return co_await f.run();
}

// POST /v1/tasks/{id}/retry; with --follow, follows it to its new end.
asio::awaitable<int> retry(const options& o, const server_address& at, task_view& view) {
  follower f(at, view, o.settings);
  std::string why;
  if (o.follow && !co_await f.open(&why)) {
    view.note(why);
    co_return unreachable;
  }
  auto a =
      co_await http_call(at, http::verb::post, "/v1/tasks/" + o.ids.front() + "/retry", {}, &why);
  if (!a) {
    view.note(why);
    co_return unreachable;
  }
  if (a->status != 202) co_return refused(*a);
  if (!o.follow) {
    print_record(a->body, view.terminal());
    co_return succeeded;
  }
  std::set<std::string> ids{o.ids.front()};
  co_await f.follow(std::move(ids));
  co_return co_await f.run();
}

asio::awaitable<int> watch(const options& o, const server_address& at, task_view& view) {
  follower f(at, view, o.settings);
  std::string why;
  if (!co_await f.open(&why)) {
    view.note(why);
    co_return unreachable;
  }
  if (!o.ids.empty()) {
    std::set<std::string> ids(o.ids.begin(), o.ids.end());
    co_await f.follow(std::move(ids));
  }
  co_return co_await f.run();
}

asio::awaitable<int> status(const options& o, const server_address& at, task_view& view) {
  std::string why;
  if (o.ids.empty()) {
    auto health = co_await http_call(at, http::verb::get, "/v1/health", {}, &why);
    std::optional<http_answer> length;
    if (health) length = co_await http_call(at, http::verb::get, "/v1/get_queue_length", {}, &why);
    if (!health || !length) {
      view.note(why);
      co_return unreachable;
    }
    json::object out{{"status", health->body.at("status")},
                     {"tasks_queued_or_running", length->body.at("task_lenth")}};
    std::cout << quiesce::support::json_text(out) << '\n';
    co_return health->status == 200 ? succeeded : refused_code;
  }
  int code = succeeded;
  for (const auto& id : o.ids) {
    auto a = co_await http_call(at, http::verb::get, "/v1/tasks/" + id, {}, &why);
    if (!a) {
      view.note(why);
      co_return unreachable;
    }
    if (a->status != 200) {
      code = refused(*a);
      continue;
    }
    print_record(a->body, view.terminal());
  }
  co_return code;
}

std::optional<options> parse(int argc, char** argv) {
  options o;
  auto give_up = static_cast<double>(o.settings.give_up.count());
  po::options_description d("quiesce-cli options");
  // clang-format off
  d.add_options()
    ("help", "print this help")
    ("url", po::value(&o.url)->default_value("http://127.0.0.1:8000"), "the server's public address (also QUIESCE_URL)")
    ("kind", po::value(&o.kind), "submit: the task's kind (sleep, cpu, or a command kind)")
    ("param", po::value(&o.params), "submit: a parameter NAME=VALUE (repeat; VALUE is JSON or a string)")
    ("priority", po::value<int>(), "submit: 0 (first) to 9")
    ("delay", po::value<double>(), "submit: seconds before it may run")
    ("max-attempts", po::value<int>(), "submit: attempts before it ends failed")
    ("timeout", po::value<double>(), "submit: seconds an attempt may take")
    ("seconds", po::value<double>(), "submit: how long a sleep task runs")
    ("iterations", po::value<double>(), "submit: how much work a cpu task does")
    ("idempotency-key", po::value(&o.idempotency_key), "submit: retry-safe key")
    ("follow", po::bool_switch(&o.follow), "submit: follow the task until it ends")
    ("task", po::value(&o.ids), "watch: a task to follow (repeat; none: every task)")
    ("give-up", po::value(&give_up)->default_value(give_up), "seconds of failed reconnects before exiting 3");
  // clang-format on
  // The command and its ids are positional: parsed, never listed in --help.
  po::options_description positional;
  positional.add_options()("command", po::value(&o.command))("ids",
                                                             po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(d).add(positional);
  po::positional_options_description pos;
  pos.add("command", 1).add("ids", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::store(po::parse_environment(d,
                                    [](const std::string& env) -> std::string {
                                      return env == "QUIESCE_URL" ? "url" : "";
                                    }),
              vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "quiesce-cli: " << e.what() << "\n\n" << usage_text;
    return std::nullopt;
  }
  if (vm.count("help")) {
    std::cout << usage_text << '\n' << d;
    std::exit(0);  // NOLINT(concurrency-mt-unsafe): one thread yet
  }
  if (vm.count("seconds")) o.seconds = vm["seconds"].as<double>();
  if (vm.count("iterations")) o.iterations = vm["iterations"].as<double>();
  if (vm.count("priority")) o.priority = vm["priority"].as<int>();
  if (vm.count("max-attempts")) o.max_attempts = vm["max-attempts"].as<int>();
  if (vm.count("delay")) o.delay = vm["delay"].as<double>();
  if (vm.count("timeout")) o.timeout = vm["timeout"].as<double>();
  for (const auto& p : o.params)
    if (p.find('=') == std::string::npos || p.front() == '=') {
      std::cerr << "quiesce-cli: --param takes NAME=VALUE, not " << p << "\n\n" << usage_text;
      return std::nullopt;
    }
  if (vm.count("ids")) {
    auto more = vm["ids"].as<std::vector<std::string>>();
    o.ids.insert(o.ids.end(), more.begin(), more.end());
  }
  o.settings.give_up = std::chrono::seconds(static_cast<long>(give_up));
  bool ok = o.command == "status" || o.command == "watch" ||
            (o.command == "submit" && o.ids.empty()) || (o.command == "retry" && o.ids.size() == 1);
  if (!ok) {
    std::cerr << "quiesce-cli: "
              << (o.command.empty() ? "no command" : "bad command line: " + o.command) << "\n\n"
              << usage_text;
    return std::nullopt;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  auto o = parse(argc, argv);
  if (!o) return usage;
  auto at = parse_server_url(o->url);
  if (!at) {
    std::cerr << "quiesce-cli: --url must be http://host:port, not " << o->url << '\n';
    return usage;
  }
  task_view view(isatty(STDOUT_FILENO) == 1);
  asio::io_context io;
  int code = unreachable;
  auto run = o->command == "submit"  ? submit
             : o->command == "retry" ? retry
             : o->command == "watch" ? watch
                                     : status;
  asio::co_spawn(io, run(*o, *at, view), [&code](std::exception_ptr e, int c) {
    if (e) std::rethrow_exception(e);
    code = c;
  });
  io.run();
  return code;
}
