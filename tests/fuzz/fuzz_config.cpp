// libFuzzer: a command line (arguments separated by NUL or newline) through the configuration
// parser and its start-up checks. Bad values must be refused with std::invalid_argument only.
#include "app/config.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args{"quiesce", ""};
  for (std::size_t i = 0; i < size; ++i) {
    char ch = static_cast<char>(data[i]);
    if (ch == '\0' || ch == '\n')
      args.emplace_back();
    else
      args.back() += ch;
  }
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  try {
    auto parsed = quiesce::app::parse_config(static_cast<int>(argv.size()), argv.data());
    if (auto* c = std::get_if<quiesce::app::config>(&parsed)) quiesce::app::timing_warnings(*c);
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
