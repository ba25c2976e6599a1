#define BOOST_TEST_MODULE app
#include "app/config.hpp"
#include "app/settings.hpp"
#include "net/http.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdlib>

using namespace quiesce;

namespace {
app::config parse(std::vector<const char*> args) {
  args.insert(args.begin(), "quiesce");
  return std::get<app::config>(app::parse_config(static_cast<int>(args.size()), args.data()));
}
}  // namespace

BOOST_AUTO_TEST_CASE(defaults_match_the_design) {
  auto c = parse({});
  BOOST_TEST(c.bind == "0.0.0.0");
  BOOST_TEST(c.port == 8000);
  BOOST_TEST(c.admin_port == 9000);
  BOOST_TEST(c.task_seconds == 20.0);
  BOOST_TEST(c.shutdown_timeout < 30.0);
  BOOST_TEST(c.threads > 0u);
  BOOST_TEST(app::timing_warnings(c).empty());
}

// Each part is given the configured values, never a default of its own (workers were 8 in the
// config and 4 in the service's settings; the longest sleep 20 s and 3600 s).
BOOST_AUTO_TEST_CASE(every_part_gets_the_configured_values) {
  auto c = parse(
      {"--workers",        "3",      "--max-task-seconds",    "7",    "--task-seconds",  "2",
       "--queue-capacity", "11",     "--ws-send-queue",       "13",   "--close-timeout", "1.5",
       "--header-limit",   "5000",   "--lease-seconds",       "9",    "--database-pool", "6",
       "--store",          "memory", "--ws-send-queue-bytes", "4096", "--ws-batch-us",   "250"});
  auto service = app::service_settings_of(c);
  BOOST_TEST(service.workers == 3u);
  BOOST_TEST(service.queue_capacity == 11u);
  BOOST_TEST(!service.requeue_on_shutdown);  // memory: nothing is kept for a next process
  BOOST_TEST(app::service_settings_of(parse({})).requeue_on_shutdown);  // sqlite, the default
  auto kinds = app::kind_settings_of(c);
  BOOST_TEST(kinds.default_seconds == 2.0);
  BOOST_TEST(kinds.max_seconds == 7.0);
  auto shared = app::shared_settings_of(c);
  BOOST_TEST(shared.workers == 3u);
  BOOST_TEST(shared.pool_size == 6u);
  BOOST_TEST(shared.lease.count() == 9000);
  auto streams = app::stream_settings_of(c);
  BOOST_TEST(streams.send_queue_limit == 13u);
  BOOST_TEST(streams.send_queue_byte_limit == 4096u);
  BOOST_TEST(streams.close_timeout.count() == 1500);
  BOOST_TEST(streams.batch_window.count() == 250);
  BOOST_TEST(app::drain_settings_of(c).close_timeout.count() == 1500);
  BOOST_TEST(app::http_limits_of(c).header_limit == 5000u);
  BOOST_TEST(app::journal_settings_of(c, "me").lease.count() == 9000);
}

BOOST_AUTO_TEST_CASE(environment_sets_knobs_and_flags_win) {
  setenv("QUIESCE_PORT", "8100", 1);
  setenv("QUIESCE_DRAIN_DELAY", "1.5", 1);
  setenv("QUIESCE_SHUTDOWN_TIMEOUT", "12", 1);
  auto c = parse({"--port", "8200"});
  unsetenv("QUIESCE_PORT");
  unsetenv("QUIESCE_DRAIN_DELAY");
  unsetenv("QUIESCE_SHUTDOWN_TIMEOUT");
  BOOST_TEST(c.port == 8200);
  BOOST_TEST(c.drain_delay == 1.5);
  BOOST_TEST(c.shutdown_timeout == 12.0);
  BOOST_TEST(app::ms_from_seconds(1.5).count() == 1500);
}

BOOST_AUTO_TEST_CASE(bad_values_name_the_knob) {
  auto message_of = [](std::vector<const char*> args) -> std::string {
    try {
      parse(std::move(args));
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  BOOST_TEST(message_of({"--workers", "0"}).find("--workers") != std::string::npos);
  BOOST_TEST(message_of({"--close-spread", "-1"}).find("--close-spread") != std::string::npos);
  BOOST_TEST(message_of({"--port", "seventy"}).find("port") != std::string::npos);
  BOOST_TEST(message_of({"--log-level", "loud"}).find("debug") != std::string::npos);
  BOOST_TEST(message_of({"--no-such-knob"}).find("no-such-knob") != std::string::npos);
  BOOST_TEST(message_of({"--store", "mysql"}).find("postgres") != std::string::npos);
  BOOST_TEST(message_of({"--ws-batch-us", "200000"}).find("--ws-batch-us") != std::string::npos);
  BOOST_TEST(message_of({"--database-pool", "0"}).find("--database-pool") != std::string::npos);
  BOOST_TEST(message_of({"--database-timeout", "0"}).find("--database-timeout") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_shared_store_reads_its_url_from_the_environment) {
  setenv("QUIESCE_STORE", "postgres", 1);
  setenv("QUIESCE_DATABASE_URL", "postgresql://q@db:5432/q", 1);
  auto c = parse({});
  unsetenv("QUIESCE_STORE");
  unsetenv("QUIESCE_DATABASE_URL");
  BOOST_TEST(c.store == "postgres");
  BOOST_TEST(c.database_url == "postgresql://q@db:5432/q");
  BOOST_TEST(c.database_pool == 4u);
  BOOST_TEST(c.database_timeout == 5.0);
}

BOOST_AUTO_TEST_CASE(help_lists_every_knob_with_its_default) {
  const char* args[] = {"quiesce", "--help"};
  auto h = std::get<app::help_text>(app::parse_config(2, args)).text;
  for (auto knob : {"--port", "--admin-port", "--shutdown-timeout", "--drain-delay",
                    "--close-spread", "--queue-capacity", "--body-limit", "--ws-send-queue",
                    "--ws-send-queue-bytes", "--event-retention"})
    BOOST_TEST(h.find(knob) != std::string::npos, knob);
  BOOST_TEST(h.find("(=8000)") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(timing_check_names_the_knob_that_does_not_fit) {
  auto c = parse({"--shutdown-timeout", "5", "--max-task-seconds", "20"});
  auto w = app::timing_warnings(c);
  BOOST_REQUIRE(w.size() == 1u);
  BOOST_TEST(w[0].find("--shutdown-timeout") != std::string::npos);
  BOOST_TEST(w[0].find("--max-task-seconds") != std::string::npos);
}

// Past the deadline a command still gets its kill grace and its pipes' linger: the pod's grace
// period must hold them too.
BOOST_AUTO_TEST_CASE(timing_check_counts_the_commands_kill_grace) {
  auto c = parse({"--shutdown-timeout", "25", "--command-linger", "1"});
  BOOST_TEST(app::timing_warnings(c, std::chrono::seconds(3)).empty());
  auto w = app::timing_warnings(c, std::chrono::seconds(5));
  BOOST_REQUIRE(w.size() == 1u);
  BOOST_TEST(w[0].find("kill_grace_seconds") != std::string::npos);
  BOOST_TEST(w[0].find("terminationGracePeriodSeconds") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(errors_are_json_with_code_and_detail) {
  auto res = net::error_response(net::http::status::payload_too_large, "body_too_large", "too big");
  BOOST_TEST(res.result_int() == 413u);
  BOOST_TEST(res[net::http::field::content_type] == "application/json");
  auto v = boost::json::parse(res.body());
  BOOST_TEST(v.at("error").as_string() == "body_too_large");
  BOOST_TEST(v.at("detail").as_string() == "too big");
}
