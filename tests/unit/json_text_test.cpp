// The hand-written JSON and time texts (support/json_text.cpp, log.cpp): the same bytes as
// Boost.JSON's serializer where that matters, numbers as people write them.
#include "support/json_text.hpp"
#include "support/log.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cmath>
#include <string>

using namespace quiesce::support;

// Boost.JSON 1.81 prints 0.0 as 0E0 and 15.0 as 1.5E1: what people and the CLI read must not.
BOOST_AUTO_TEST_CASE(json_numbers_print_as_written_by_hand) {
  namespace json = boost::json;
  BOOST_TEST(json_text(json::value(0.0)) == "0");
  BOOST_TEST(json_text(json::value(15.0)) == "15");
  BOOST_TEST(json_text(json::value(0.25)) == "0.25");
  BOOST_TEST(json_text(json::value(0.1)) == "0.1");
  BOOST_TEST(json_text(json::value(1e-7)) == "1e-07");
  BOOST_TEST(json_text(json::value(-3)) == "-3");
  BOOST_TEST(json_text(json::value(std::uint64_t(18446744073709551615u))) ==
             "18446744073709551615");
  BOOST_TEST(json_text(json::value(std::nan(""))) == "null");
}

// Every character below 0x80 in runs and alone: the same bytes as Boost.JSON's serializer.
BOOST_AUTO_TEST_CASE(json_strings_escape_as_boost_json_does) {
  namespace json = boost::json;
  std::string all;
  for (int c = 0; c < 0x80; ++c) all += static_cast<char>(c);
  for (const std::string& s : {all, std::string("plain text only"), std::string("\"\\"),
                               std::string(), std::string("tail\n"), std::string("\x01head")})
    BOOST_TEST(json_text(json::value(s)) == json::serialize(json::value(s)));
  // Plain runs are found eight bytes at a time: each escape at every offset of three words,
  // among ASCII and multi-byte UTF-8, and at the very end.
  const std::string plain =
      "abc\xc3\xa9"
      "d\xe2\x82\xac"
      " efghijklmnopq";  // 23 bytes
  for (char special : {'"', '\\', '\n', '\x1f', '\x00'})
    for (std::size_t at = 0; at <= plain.size(); ++at) {
      std::string s = plain;
      s.insert(at, 1, special);
      BOOST_TEST(json_text(json::value(s)) == json::serialize(json::value(s)), "at " << at);
    }
}

BOOST_AUTO_TEST_CASE(times_print_as_rfc3339_utc_with_milliseconds) {
  using namespace std::chrono;
  BOOST_TEST(quiesce::log::format_time(system_clock::time_point{}) == "1970-01-01T00:00:00.000Z");
  // 2026-12-02T14:50:07.045Z, and a time before 1970 keeps its milliseconds positive.
  BOOST_TEST(quiesce::log::format_time(system_clock::time_point{1796223007045ms}) ==
             "2026-12-02T14:50:07.045Z");
  BOOST_TEST(quiesce::log::format_time(system_clock::time_point{-1ms}) ==
             "1969-12-31T23:59:59.999Z");
  BOOST_TEST(quiesce::log::format_time(sys_days{2024y / February / 29} + 23h + 59min + 59s +
                                       999ms) == "2024-02-29T23:59:59.999Z");
  BOOST_TEST(quiesce::log::format_time(sys_days{2026y / December / 3} + 7ms + 1us) ==
             "2026-12-03T00:00:00.007Z");  // below a millisecond: truncated
}

BOOST_AUTO_TEST_CASE(json_text_reads_back_as_the_same_value) {
  namespace json = boost::json;
  json::value v =
      json::parse(R"({"s":"a\"b\\c\n\u0001\u00e9 \ud83d\ude00","n":null,"t":true,"f":false,)"
                  R"("a":[1,-2,0.5,1.5E300,[],{}],"o":{"x":{"y":[]}},"p":123456.789})");
  auto text = json_text(v);
  BOOST_TEST(json::parse(text) == v);
  BOOST_TEST(text.find('E') == std::string::npos);
  // Strings are escaped as Boost.JSON escapes them (the same bytes on the wire as before).
  BOOST_TEST(json_text(v.at("s")) == json::serialize(v.at("s")));
}
