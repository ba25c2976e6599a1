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

// Takes everything `out` has, as the wire does each time it is told.
inline void take_all(net::outbox& out, taken& t) {
  net::outbox::batch b;
  while (out.ready()) {
    out.take(b);
    for (const auto& f : b.frames) t.frames.push_back(*f);
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
