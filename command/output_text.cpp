#include "command/output_text.hpp"

namespace quiesce::command {

void output_tail::append(std::string_view bytes) {
  if (limit_ == 0) return;
  if (bytes.size() >= limit_) {
    kept_.assign(bytes.substr(bytes.size() - limit_));
    return;
  }
  kept_.append(bytes);
  if (kept_.size() > 2 * limit_) kept_.erase(0, kept_.size() - limit_);
}

std::string output_tail::text() const {
  std::string_view view(kept_);
  if (view.size() > limit_) view.remove_prefix(view.size() - limit_);
  // Cut at the first line start, unless that would leave nothing.
  if (kept_.size() > view.size() || view.size() == limit_)
    if (auto nl = view.find('\n'); nl != std::string_view::npos && nl + 1 < view.size())
      view.remove_prefix(nl + 1);
  return valid_utf8(view);
}

namespace {

// The length of the valid UTF-8 sequence at the start of `s`, or 0 (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF).
std::size_t sequence_length(std::string_view s) {
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  auto cont = [&](std::size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

std::string valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  while (!bytes.empty()) {
    auto n = sequence_length(bytes);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      n = 1;
    } else {
      out.append(bytes.substr(0, n));
    }
    bytes.remove_prefix(n);
  }
  return out;
}

}  // namespace quiesce::command
