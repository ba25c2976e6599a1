// RFC 6455 framing for the server side of an accepted stream: headers of the frames it sends
// (unmasked, so one event's bytes are the same for every client and only the header is per
// write) and a parser of what clients send (masked), with the checks a conforming server makes.
// No extension is ever negotiated, so no RSV bit may be set.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace quiesce::net::ws {

enum class opcode : std::uint8_t {
  continuation = 0,
  text = 1,
  binary = 2,
  close = 8,
  ping = 9,
  pong = 10,
};

// A final (FIN) frame's header: 2, 4 or 10 bytes.
struct header {
  std::array<unsigned char, 10> bytes{};
  std::size_t size = 0;
};
header frame_header(opcode op, std::size_t payload_size);

// A whole control frame (header and payload), payload at most 125 bytes: close payloads are
// the code and as much of the reason as fits.
std::string control_frame(opcode op, std::string_view payload);
std::string close_frame(std::uint16_t code, std::string_view reason);

bool valid_utf8(std::string_view s);

// What the parser found in the bytes it was given.
struct parsed {
  // need_more: no whole frame yet; fragment: one part of a message, call again.
  enum kind_t { need_more, fragment, message, ping, pong, close, fail } kind = need_more;
  // Bytes of the input this result used up. A fail that may be skipped (1009, 1007 in a text
  // message) says how long the bad frame is, which may be more than was given; a fail with 0
  // ends the reading (the framing is lost, or it was the peer's close that was bad).
  std::size_t consumed = 0;
  std::string payload;     // message text, ping payload
  std::uint16_t code = 0;  // close: the peer's code (1005 when it gave none); fail: ours,
                           // Beast's websocket::close_code (1002, 1007 or 1009)
};

// Client frames, one at a time; fragments are joined into messages of at most `limit` bytes.
class parser {
 public:
  explicit parser(std::size_t limit) : limit_(limit) {}
  // Looks at the front of `in`: a complete frame yields a result and how much it used; a frame
  // not complete yet yields need_more, unless its header already breaks a rule (a size past the
  // limit fails at once, before its payload is buffered). After a `fail` that used nothing,
  // stop reading; after one that names its frame's length, read on past it.
  parsed next(std::string_view in);

 private:
  std::size_t limit_;
  bool in_message_ = false;  // a first fragment came and the final one has not
  bool text_ = false;        // the message being joined is text
  bool dropping_ = false;    // it is past the limit: its fragments are skipped
  std::string message_;      // its fragments so far
};

}  // namespace quiesce::net::ws
