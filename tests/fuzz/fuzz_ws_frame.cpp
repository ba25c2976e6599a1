// libFuzzer: what a stream's client sends, as bytes (net/ws_frame.cpp's parser). Besides staying
// in bounds, the parser must not depend on how TCP cut the bytes: the same frame cut short is
// "need more", unless its header alone already decided the same answer.
#include "net/ws_frame.hpp"

#include <cstdint>
#include <string_view>

namespace ws = quiesce::net::ws;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t limit = data[0];  // small limits reach the 1009 paths
  const std::uint8_t cut = data[1];
  std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
  ws::parser parser(limit);
  std::size_t at = 0;
  while (at < in.size()) {
    ws::parser probe = parser;  // the same state, for the same bytes cut short
    auto whole = parser.next(in.substr(at));
    if (whole.kind == ws::parsed::need_more) break;
    // A fail that uses nothing ends the reading; anything else uses a frame (else the wire,
    // which parses on after a fail it can skip, would loop on the same bytes).
    bool framing_lost = whole.kind == ws::parsed::fail && whole.consumed == 0;
    if (!framing_lost && whole.consumed < 2) __builtin_trap();
    if (whole.kind == ws::parsed::message && whole.payload.size() > limit) __builtin_trap();
    auto shorter = std::min(whole.consumed, in.size() - at);
    if (shorter > 0) {
      auto part = probe.next(in.substr(at, cut % shorter));
      bool same = part.kind == whole.kind && part.code == whole.code &&
                  part.consumed == whole.consumed && part.payload == whole.payload;
      if (part.kind != ws::parsed::need_more && !same) __builtin_trap();
    }
    if (framing_lost) break;
    if (whole.kind == ws::parsed::close) break;  // nothing is read after a close
    at += whole.consumed;  // past the end when a refused frame's payload has not come yet
  }
  return 0;
}
