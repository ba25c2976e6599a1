// What a stream's client may send: `subscribe` to some tasks or to all. Anything else gets an
// `error` frame and the stream stays open. Separate from the session so the fuzzer drives it.
#pragma once

#include "stream/stream_hub.hpp"

#include <string_view>

namespace quiesce::stream {

// Applies one text message to `c` (on its strand); the answer goes to its outbox.
void handle_client_message(stream_client& c, std::string_view text);

}  // namespace quiesce::stream
