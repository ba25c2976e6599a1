// libFuzzer: one text message from a stream's client (`subscribe`, or anything else it may send).
#include "stream/client_message.hpp"
#include "stream/stream_fanout.hpp"

#include <boost/asio/io_context.hpp>

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static boost::asio::io_context io;
  static auto fanout = std::make_shared<quiesce::stream::stream_fanout>(io.get_executor());
  auto client = std::make_shared<quiesce::stream::stream_client>(
      fanout, "fuzz", std::make_shared<quiesce::net::send_limit>(4));
  quiesce::stream::handle_client_message(
      *client, std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
