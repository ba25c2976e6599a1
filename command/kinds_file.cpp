#include "command/kinds_file.hpp"

#include <boost/json/parse.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace quiesce::command {
namespace json = boost::json;

namespace {

[[noreturn]] void refuse(const std::string& where, const std::string& why) {
  throw std::invalid_argument(where + ": " + why);
}

std::chrono::milliseconds seconds_field(const json::value& v, const std::string& where, double lo,
                                        double hi) {
  if (!v.is_number()) refuse(where, "must be a number of seconds");
  double s = v.to_number<double>();
  if (!std::isfinite(s) || s < lo || s > hi)
    refuse(where, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return std::chrono::milliseconds(static_cast<long long>(std::llround(s * 1000)));
}

long long integer_field(const json::value& v, const std::string& where, long long lo,
                        long long hi) {
  if (!v.is_int64() && !v.is_uint64()) refuse(where, "must be an integer");
  long long n = v.is_int64() ? v.as_int64() : static_cast<long long>(v.as_uint64());
  if (n < lo || n > hi)
    refuse(where, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return n;
}

std::string string_field(const json::value& v, const std::string& where) {
  if (!v.is_string() || v.as_string().empty()) refuse(where, "must be a non-empty string");
  auto& s = v.as_string();
  if (s.find('\0') != json::string::npos) refuse(where, "must not contain a NUL character");
  return std::string(s);
}

// A kind's name goes into URLs' bodies, logs and metrics' labels: keep it plain.
void check_name(const std::string& name, const std::string& where) {
  if (name == "sleep" || name == "cpu") refuse(where, "'" + name + "' is a built-in kind");
  if (name.empty() || name.size() > 64) refuse(where, "a kind's name has 1 to 64 characters");
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      refuse(where, "a kind's name has only letters, digits, '-', '_' and '.'");
}

void check_executable(const std::string& program, const std::string& where) {
  struct stat st {};
  if (::stat(program.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
      ::access(program.c_str(), X_OK) != 0)
    refuse(where, "'" + program + "' is not an executable file");
}

void read_command(kind_spec& k, const json::value& v, const std::string& where) {
  if (!v.is_array() || v.as_array().empty()) refuse(where, "must be a non-empty array of strings");
  for (std::size_t i = 0; i < v.as_array().size(); ++i)
    k.command.push_back(string_field(v.as_array()[i], where + "[" + std::to_string(i) + "]"));
}

// A relative path is the kinds file's neighbour: a ConfigMap's programs sit beside it.
std::string beside(const std::string& path, const std::string& base) {
  return path.empty() || path.front() == '/' ? path : base + "/" + path;
}

void read_env(kind_spec& k, const json::value& v, const std::string& where) {
  if (!v.is_object()) refuse(where, "must be an object of strings");
  for (auto& [name, value] : v.as_object()) {
    std::string key(name);
    if (key.empty() || key.find('=') != std::string::npos)
      refuse(where, "'" + key + "' is not a variable name");
    if (!value.is_string()) {
      std::string field = where;
      field += '.';
      field += key;
      refuse(field, "must be a string");
    }
    k.env[key] = std::string(value.as_string());
  }
}

void read_field(kind_spec& k, std::string_view key, const json::value& v,
                const std::string& where) {
  constexpr double day = 86400, year = 365 * day;
  if (key == "command") return read_command(k, v, where);
  if (key == "cwd") {
    k.cwd = string_field(v, where);
    return;
  }
  if (key == "env") return read_env(k, v, where);
  if (key == "timeout_seconds")
    k.timeout = seconds_field(v, where, 0.001, year);
  else if (key == "kill_grace_seconds")
    k.kill_grace = seconds_field(v, where, 0, 3600);
  else if (key == "max_attempts")
    k.max_attempts = int(integer_field(v, where, 1, 1000));
  else if (key == "backoff_seconds")
    k.backoff = seconds_field(v, where, 0, day);
  else if (key == "backoff_max_seconds")
    k.backoff_max = seconds_field(v, where, 0, year);
  else if (key == "concurrency")
    k.concurrency = unsigned(integer_field(v, where, 0, 100000));
  else
    refuse(where, "unknown key");
}

kind_spec read_kind(const std::string& name, const json::value& v, const std::string& where,
                    const std::string& base) {
  check_name(name, where);
  if (!v.is_object()) refuse(where, "must be an object");
  kind_spec k;
  k.name = name;
  for (auto& [key, value] : v.as_object())
    read_field(k, key, value, where + "." + std::string(key));
  if (k.command.empty()) refuse(where, "'command' is required");
  k.command.front() = beside(k.command.front(), base);
  check_executable(k.command.front(), where + ".command[0]");
  k.cwd = beside(k.cwd, base);
  struct stat st {};
  if (!k.cwd.empty() && (::stat(k.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)))
    refuse(where + ".cwd", "'" + k.cwd + "' is not a directory");
  if (k.backoff_max < k.backoff) refuse(where, "backoff_max_seconds is below backoff_seconds");
  return k;
}

}  // namespace

std::vector<kind_spec> parse_kinds(const std::string& text, const std::string& origin,
                                   const std::string& base) {
  json::error_code ec;
  auto doc = json::parse(text, ec);
  if (ec) refuse(origin, "not valid JSON: " + ec.message());
  if (!doc.is_object()) refuse(origin, "must be a JSON object with the key 'kinds'");
  std::vector<kind_spec> out;
  for (auto& [key, value] : doc.as_object()) {
    if (key != "kinds") refuse(origin, "unknown key '" + std::string(key) + "'");
    if (!value.is_object()) refuse(origin + ": kinds", "must be an object of kinds");
    for (auto& [name, kind] : value.as_object())
      out.push_back(
          read_kind(std::string(name), kind, origin + ": kinds." + std::string(name), base));
  }
  return out;
}

std::vector<kind_spec> read_kinds_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) refuse(path, "cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_kinds(text.str(), path, std::filesystem::absolute(path).parent_path().string());
}

}  // namespace quiesce::command
