#include "support/json_text.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

namespace quiesce::support {
namespace json = boost::json;

namespace {

template <typename T>
void append_number(std::string& out, T n) {
  std::array<char, 32> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), n);
  out.append(buf.data(), end);
}

bool plain(char c) { return c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20; }

void append_escaped(std::string& out, char c) {
  static constexpr char hex[] = "0123456789abcdef";
  auto u = static_cast<unsigned char>(c);
  switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\f':
      out += "\\f";
      break;
    default:
      out += "\\u00";
      out += hex[u >> 4];
      out += hex[u & 0xf];
  }
}

// Whether any of the eight bytes of `w` is '"', '\\' or below 0x20: "has a byte less than n"
// (x - n per byte) & ~x & high bits, exact about whether there is one, not about where.
bool needs_escape(std::uint64_t w) {
  constexpr std::uint64_t ones = 0x0101010101010101, highs = ones * 0x80;
  auto has_less = [](std::uint64_t x, std::uint64_t n) { return (x - ones * n) & ~x & highs; };
  return (has_less(w, 0x20) | has_less(w ^ (ones * '"'), 1) | has_less(w ^ (ones * '\\'), 1)) != 0;
}

}  // namespace

// Runs of characters that need no escape go in with one append, found eight bytes at a time: a
// character at a time was a large share of a task's instructions (bench/HISTORY.md).
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  const char* p = s.data();
  const char* const end = p + s.size();
  while (p != end) {
    const char* run = p;
    for (std::uint64_t w = 0; end - p >= 8; p += 8) {
      std::memcpy(&w, p, 8);
      if (needs_escape(w)) break;
    }
    while (p != end && plain(*p)) ++p;  // UTF-8 passes through, as Boost.JSON's serializer does
    out.append(run, static_cast<std::size_t>(p - run));
    if (p != end) append_escaped(out, *p++);
  }
  out += '"';
}

void append_json(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      out += "null";
      return;
    case json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return;
    case json::kind::int64:
      append_number(out, v.get_int64());
      return;
    case json::kind::uint64:
      append_number(out, v.get_uint64());
      return;
    case json::kind::double_:
      // JSON has no NaN or infinity.
      if (std::isfinite(v.get_double()))
        append_number(out, v.get_double());
      else
        out += "null";
      return;
    case json::kind::string:
      append_json_string(out, v.get_string());
      return;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!std::exchange(first, false)) out += ',';
        append_json(out, e);
      }
      out += ']';
      return;
    }
    case json::kind::object:
      append_json(out, v.get_object());
      return;
  }
}

void append_json(std::string& out, const json::object& o) {
  out += '{';
  bool first = true;
  for (const auto& [key, value] : o) {
    if (!std::exchange(first, false)) out += ',';
    append_json_string(out, key);
    out += ':';
    append_json(out, value);
  }
  out += '}';
}

namespace {

template <class Json>
std::string text_of(const Json& j) {
  std::string out;
  out.reserve(256);
  append_json(out, j);
  return out;
}

}  // namespace

std::string json_text(const json::value& v) { return text_of(v); }
std::string json_text(const json::object& o) { return text_of(o); }

}  // namespace quiesce::support
