// The tables every replica shares, created and migrated by the replicas themselves.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <string>

namespace quiesce::tasks::pg {

inline constexpr int schema_version = 3;

class connection;

// Creates or migrates the schema on `c` under an advisory lock, released once done (or when `c`
// closes after a failure), so that replicas starting at once take turns. Throws db_error
// (unreachable, refused) or std::runtime_error (a newer schema than ours).
boost::asio::awaitable<void> migrate(connection& c, std::chrono::milliseconds timeout);

}  // namespace quiesce::tasks::pg
