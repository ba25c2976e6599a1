// Wires configuration, tasks, streams, listeners and the drain coordinator into one process.
#pragma once

#include "app/config.hpp"

namespace quiesce::app {

// The task store cannot be opened (missing, read-only or corrupt data): EX_IOERR.
inline constexpr int exit_storage = 74;

// Runs the server until it has drained; returns the process exit code.
int run_server(const config& cfg);

}  // namespace quiesce::app
