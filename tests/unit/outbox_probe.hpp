// What the net tests read from an outbox: the frames a writer took and its close code, and
// events made up for a fanout. Shared by net_test.cpp and outbox_test.cpp.
#pragma once

#include "net/outbox.hpp"
#include "tasks/event_bus.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace net_test {
namespace asio = boost::asio;
using namespace quiesce;

inline net::frame text(const std::string& s) { return std::make_shared<const std::string>(s); }

// What a writer took from an outbox: the frames' texts, then the close code once it came.
struct taken {
  std::vector<std::string> frames;
  std::optional<std::uint16_t> close;
};

// The texts of whole unmasked text frames, one after another (a framed run).
inline std::vector<std::string> texts_of(std::string_view frames) {
  std::vector<std::string> out;
  while (!frames.empty()) {
    BOOST_TEST_REQUIRE(static_cast<unsigned char>(frames[0]) == 0x81u);  // FIN, text
    std::size_t size = static_cast<unsigned char>(frames[1]);
    std::size_t at = 2;
    if (size >= 126) {
      const std::size_t bytes = size == 126 ? 2 : 8;
      size = 0;
      for (std::size_t i = 0; i < bytes; ++i)
        size = (size << 8) | static_cast<unsigned char>(frames[at + i]);
      at += bytes;
    }
    out.emplace_back(frames.substr(at, size));
    frames.remove_prefix(at + size);
  }
  return out;
}

// Takes everything `out` has, as the wire does each time it is told; a framed run becomes the
// texts it holds.
inline void take_all(net::outbox& out, taken& t) {
  net::outbox::batch b;
  while (out.ready()) {
    out.take(b);
    for (const auto& q : b.frames) {
      if (!q.framed) {
        t.frames.push_back(*q.bytes);
        continue;
      }
      auto texts = texts_of(*q.bytes);
      BOOST_TEST(texts.size() == q.frames);
      t.frames.insert(t.frames.end(), texts.begin(), texts.end());
    }
    if (b.close) t.close = static_cast<std::uint16_t>(b.close->code);
  }
}

// Everything `out` sends until its close: the frames' texts, then the close code.
inline std::pair<std::vector<std::string>, std::uint16_t> drain(asio::io_context& io,
                                                                net::outbox& out) {
  taken t;
  out.on_ready([&out, &t] { take_all(out, t); });
  take_all(out, t);
  io.run();
  io.restart();
  out.on_ready(nullptr);
  BOOST_TEST_REQUIRE(t.close.has_value());
  return {t.frames, *t.close};
}

inline tasks::event_ptr event(std::uint64_t seq, std::string task) {
  return std::make_shared<const tasks::stream_event>(
      tasks::stream_event{seq, std::move(task), std::to_string(seq)});
}

}  // namespace net_test
