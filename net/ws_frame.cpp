#include "net/ws_frame.hpp"

#include <boost/beast/websocket/rfc6455.hpp>

#include <utility>

namespace quiesce::net::ws {

namespace {

using boost::beast::websocket::close_code;

parsed failure(close_code code) {
  parsed p;
  p.kind = parsed::fail;
  p.code = static_cast<std::uint16_t>(code);
  return p;
}

std::uint64_t big_endian(std::string_view in, std::size_t at, std::size_t bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(in[at + i]);
  return v;
}

// Codes a peer may send (RFC 6455 7.4; 1004-1006 and 1015 are never sent on the wire).
bool valid_close_code(std::uint16_t c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

}  // namespace

header frame_header(opcode op, std::size_t payload_size) {
  header h;
  h.bytes[0] = static_cast<unsigned char>(0x80 | static_cast<unsigned>(op));
  if (payload_size < 126) {
    h.bytes[1] = static_cast<unsigned char>(payload_size);
    h.size = 2;
  } else if (payload_size <= 0xffff) {
    h.bytes[1] = 126;
    h.bytes[2] = static_cast<unsigned char>(payload_size >> 8);
    h.bytes[3] = static_cast<unsigned char>(payload_size);
    h.size = 4;
  } else {
    h.bytes[1] = 127;
    for (std::size_t i = 0; i < 8; ++i)
      h.bytes[2 + i] =
          static_cast<unsigned char>(static_cast<std::uint64_t>(payload_size) >> (8 * (7 - i)));
    h.size = 10;
  }
  return h;
}

std::string control_frame(opcode op, std::string_view payload) {
  payload = payload.substr(0, 125);
  auto h = frame_header(op, payload.size());
  std::string f(reinterpret_cast<const char*>(h.bytes.data()), h.size);
  f.append(payload);
  return f;
}

std::string close_frame(std::uint16_t code, std::string_view reason) {
  std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
  payload.append(reason.substr(0, 123));
  return control_frame(opcode::close, payload);
}

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0, min = 0;
    if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;  // cut short
    for (std::size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past Unicode's end are not UTF-8.
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return false;
    i += n + 1;
  }
  return true;
}

parsed parser::next(std::string_view in) {
  if (in.size() < 2) return {};
  auto b0 = static_cast<unsigned char>(in[0]), b1 = static_cast<unsigned char>(in[1]);
  bool fin = (b0 & 0x80) != 0;
  auto op = static_cast<opcode>(b0 & 0x0f);
  if ((b0 & 0x70) != 0) return failure(close_code::protocol_error);  // no extension was agreed
  if ((b1 & 0x80) == 0) return failure(close_code::protocol_error);  // a client must mask
  std::size_t at = 2;
  std::uint64_t size = b1 & 0x7f;
  if (size == 126) {
    if (in.size() < 4) return {};
    size = big_endian(in, 2, 2);
    at = 4;
    if (size < 126) return failure(close_code::protocol_error);  // not the shortest form
  } else if (size == 127) {
    if (in.size() < 10) return {};
    size = big_endian(in, 2, 8);
    at = 10;
    if (size <= 0xffff || (size >> 63) != 0) return failure(close_code::protocol_error);
  }
  bool control = op == opcode::close || op == opcode::ping || op == opcode::pong;
  if (control) {
    if (!fin || size > 125) return failure(close_code::protocol_error);
  } else if (op == opcode::continuation) {
    if (!in_message_) return failure(close_code::protocol_error);  // nothing to continue
  } else if (op == opcode::text || op == opcode::binary) {
    if (in_message_) return failure(close_code::protocol_error);  // the last message did not end
  } else {
    return failure(close_code::protocol_error);  // a reserved opcode
  }
  if (!control && (dropping_ || message_.size() + size > limit_)) {
    // Past the limit: the caller skips the frame (its payload not yet read) and the message's
    // later fragments, and waits for the answer to its close.
    auto p = failure(close_code::too_big);
    p.consumed = at + 4 + size;
    if (std::exchange(dropping_, !fin)) p.kind = parsed::fragment;  // told once
    std::string().swap(message_);
    in_message_ = !fin;
    return p;
  }
  if (in.size() - at < 4 + size) return {};

  const char* mask = in.data() + at;
  std::string_view masked = in.substr(at + 4, size);
  parsed p;
  p.consumed = at + 4 + size;
  std::string& out = control ? p.payload : message_;
  std::size_t base = out.size();
  out.resize(base + masked.size());
  for (std::size_t i = 0; i < masked.size(); ++i)
    out[base + i] = static_cast<char>(masked[i] ^ mask[i % 4]);

  if (op == opcode::ping) {
    p.kind = parsed::ping;
  } else if (op == opcode::pong) {
    p.kind = parsed::pong;
  } else if (op == opcode::close) {
    p.kind = parsed::close;
    p.code = 1005;  // "no status": the peer gave no code
    if (p.payload.size() == 1) return failure(close_code::protocol_error);
    if (p.payload.size() >= 2) {
      p.code = static_cast<std::uint16_t>(big_endian(p.payload, 0, 2));
      if (!valid_close_code(p.code)) return failure(close_code::protocol_error);
      if (!valid_utf8(std::string_view(p.payload).substr(2)))
        return failure(close_code::bad_payload);
    }
  } else {
    if (op != opcode::continuation) text_ = op == opcode::text;
    in_message_ = !fin;
    if (!fin) {
      p.kind = parsed::fragment;
      return p;
    }
    if (text_ && !valid_utf8(message_)) {
      std::string().swap(message_);
      p = failure(close_code::bad_payload);
      p.consumed = at + 4 + size;
      return p;
    }
    p.kind = parsed::message;
    p.payload = std::move(message_);
    std::string().swap(message_);  // its capacity goes with the message
  }
  return p;
}

}  // namespace quiesce::net::ws
