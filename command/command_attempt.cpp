#include "command/command_attempt.hpp"

#include "command/output_text.hpp"
#include "lifecycle/event_count.hpp"
#include "support/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>

#include <signal.h>

#include <memory>
#include <vector>

namespace quiesce::command {
namespace asio = boost::asio;
namespace json = boost::json;
using namespace asio::experimental::awaitable_operators;
using descriptor = asio::posix::stream_descriptor;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

enum class source { out, err, channel };

// Everything one attempt's coroutines share, on the caller's strand: the feeder of stdin, a
// reader per pipe and the watcher of the pidfd each hold it, and end when its descriptors close.
struct child_run {
  child_run(const asio::any_io_executor& ex, spawned_child c, attempt_request r, channel_handlers h,
            output_limits l)
      : pid(c.pid),
        in(ex, c.stdin_w.release()),
        out(ex, c.stdout_r.release()),
        err(ex, c.stderr_r.release()),
        channel(ex, c.channel_r.release()),
        pidfd(ex, c.pidfd.release()),
        request(std::move(r)),
        on(std::move(h)),
        limits(l),
        tail(l.tail_bytes) {}

  pid_t pid;
  descriptor in, out, err, channel, pidfd;
  attempt_request request;
  channel_handlers on;  // emptied at the end: no call after run_command returned
  output_limits limits;
  lifecycle::event_count changed;  // `exited` or `reading` changed
  bool exited = false;
  int reading = 3;
  bool closed = false;
  output_tail tail;
  std::size_t logged[2] = {0, 0};  // bytes of stdout and stderr logged
  std::string stderr_last;
  std::optional<json::value> result;
};

void ignore_line(const child_run& run, std::string_view why, std::string_view line) {
  log::warn("descriptor 3 line ignored", {{"task_id", run.request.task_id},
                                          {"reason", why},
                                          {"line", valid_utf8(line.substr(0, 200))}});
}

// One descriptor-3 line: progress, checkpoint or result; anything else is logged and ignored.
void channel_line(child_run& run, std::string_view line, bool whole) {
  if (!whole) return ignore_line(run, "longer than the limit (--command-line-bytes)", line);
  if (line.empty()) return;
  json::error_code ec;
  auto v = json::parse(line, ec);  // Boost.JSON refuses invalid UTF-8
  if (ec || !v.is_object()) return ignore_line(run, "not a JSON object", line);
  auto& o = v.as_object();
  bool known = false;
  if (auto* p = o.if_contains("progress"); p && p->is_number()) {
    known = true;
    double progress = std::clamp(p->to_number<double>(), 0.0, 1.0);
    std::optional<std::string> message;
    if (auto* m = o.if_contains("message"); m && m->is_string())
      message = std::string(m->as_string());
    if (run.on.progress) run.on.progress(progress, std::move(message));
  }
  if (auto* c = o.if_contains("checkpoint")) {
    known = true;
    if (run.on.checkpoint) run.on.checkpoint(*c);
  }
  if (auto* r = o.if_contains("result")) {
    known = true;
    run.result = *r;
  }
  if (!known) ignore_line(run, "none of progress, checkpoint, result", line);
}

// One line of stdout or stderr: logged while the attempt's budget lasts.
void output_line(child_run& run, source from, std::string_view line) {
  auto i = from == source::out ? 0 : 1;
  if (from == source::err && !line.empty()) run.stderr_last = valid_utf8(line.substr(0, 512));
  auto& logged = run.logged[i];
  if (logged >= run.limits.log_bytes) return;
  logged += line.size() + 1;
  log::info("task output", {{"task_id", run.request.task_id},
                            {"stream", i == 0 ? "stdout" : "stderr"},
                            {"line", valid_utf8(line)}});
  if (logged >= run.limits.log_bytes)
    log::info("task output no longer logged (--command-log-bytes)",
              {{"task_id", run.request.task_id}, {"stream", i == 0 ? "stdout" : "stderr"}});
}

// Reads one pipe to its end (or until the attempt closes it).
asio::awaitable<void> read_pipe(std::shared_ptr<child_run> run, descriptor& d, source from) {
  std::vector<char> buf(std::size_t{64} * 1024);
  line_splitter lines(from == source::channel ? run->limits.line_bytes
                                              : std::max<std::size_t>(run->limits.log_bytes, 1));
  auto on_line = [&](std::string_view line, bool whole) {
    if (from == source::channel)
      channel_line(*run, line, whole);
    else
      output_line(*run, from, line);
  };
  for (;;) {
    auto [ec, n] = co_await d.async_read_some(asio::buffer(buf), tuple_awaitable);
    if (run->closed) break;
    std::string_view chunk(buf.data(), n);
    if (from != source::channel) run->tail.append(chunk);
    lines.feed(chunk, on_line);
    if (ec) {
      lines.finish(on_line);
      break;
    }
  }
  --run->reading;
  run->changed.notify_all();
}

// Writes the input, then closes stdin. A child that exited or closed its stdin first is EPIPE
// (this process ignores SIGPIPE); one that never reads just never gets it.
asio::awaitable<void> feed(std::shared_ptr<child_run> run) {
  // Its error is no news: the child's exit says how the attempt went.
  (void)co_await asio::async_write(run->in, asio::buffer(run->request.input), tuple_awaitable);
  boost::system::error_code ignored;
  run->in.close(ignored);
}

asio::awaitable<void> watch(std::shared_ptr<child_run> run) {
  auto [ec] = co_await run->pidfd.async_wait(descriptor::wait_read, tuple_awaitable);
  if (ec && run->closed) co_return;
  run->exited = true;  // (an error here would otherwise hang the attempt: reaping tells)
  run->changed.notify_all();
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

asio::awaitable<void> until_exited(child_run& run) {
  return run.changed.wait_until([&run] { return run.exited; });
}

enum class ending { exited, timed_out, cancelled };

asio::awaitable<ending> wait_for_end(child_run& run) {
  bool cancelled = false;
  try {
    co_await (until_exited(run) || sleep_for(run.request.timeout));
  } catch (const std::exception&) {
    // Cancelled: both branches were, so `||` throws multiple_exceptions, not operation_aborted.
    cancelled = true;
  }
  if (run.exited) co_return ending::exited;
  co_return cancelled ? ending::cancelled : ending::timed_out;
}

// SIGTERM to the group; SIGKILL after the grace.
asio::awaitable<void> stop(child_run& run) {
  signal_group(run.pid, SIGTERM);
  co_await (until_exited(run) || sleep_for(run.request.kill_grace));
  if (run.exited) co_return;
  signal_group(run.pid, SIGKILL);
  co_await until_exited(run);
}

// The pipes a little longer, then whatever of the group is left is killed (a grandchild holding
// stdout must not hang the attempt: golang/go #21922); the leader's zombie still holds its id, so
// the group's id names no one else. Then the leader is reaped and the pipes closed.
asio::awaitable<attempt_end> finish(child_run& run) {
  co_await (run.changed.wait_until([&run] { return run.reading == 0; }) ||
            sleep_for(run.limits.linger));
  signal_group(run.pid, SIGKILL);
  auto info = reap_child(run.pid, run.pidfd.native_handle());
  reap_strangers();
  run.closed = true;
  run.on = {};
  boost::system::error_code ignored;
  for (auto* d : {&run.in, &run.out, &run.err, &run.channel, &run.pidfd}) d->close(ignored);
  attempt_end end;
  end.succeeded = info.si_code == CLD_EXITED && info.si_status == 0;
  end.verdict = describe_end(info);
  end.result = std::move(run.result);
  end.output = run.tail.text();
  end.stderr_last = std::move(run.stderr_last);
  co_return end;
}

}  // namespace

asio::awaitable<attempt_end> run_command(attempt_request request, channel_handlers on,
                                         output_limits limits) {
  auto ex = co_await asio::this_coro::executor;
  auto child = spawn_child(request.spawn);
  auto run =
      std::make_shared<child_run>(ex, std::move(child), std::move(request), std::move(on), limits);
  asio::co_spawn(ex, feed(run), asio::detached);
  asio::co_spawn(ex, read_pipe(run, run->out, source::out), asio::detached);
  asio::co_spawn(ex, read_pipe(run, run->err, source::err), asio::detached);
  asio::co_spawn(ex, read_pipe(run, run->channel, source::channel), asio::detached);
  asio::co_spawn(ex, watch(run), asio::detached);

  auto why = co_await wait_for_end(*run);
  // From here the child is stopped and reaped whatever happens: bounded by its grace and the
  // linger, and a second signal does not leave it behind.
  co_await asio::this_coro::reset_cancellation_state(asio::disable_cancellation());
  if (why != ending::exited) co_await stop(*run);
  auto end = co_await finish(*run);
  if (why == ending::cancelled) throw boost::system::system_error(asio::error::operation_aborted);
  if (why == ending::timed_out) {
    end.why = attempt_end::cause::timed_out;
    end.succeeded = false;
  }
  co_return end;
}

}  // namespace quiesce::command
