#!/usr/bin/env bash
# Builds quiesce (release) and starts it with its defaults; extra arguments go to quiesce.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
cmake --preset release >/dev/null
cmake --build --preset release --target quiesce quiesce-cli
# The sqlite store's directory (--data-dir, default ./data) must exist: quiesce never creates
# one, so that a missing volume is an error rather than an empty database.
mkdir -p data
exec build/release/app/quiesce "$@"
