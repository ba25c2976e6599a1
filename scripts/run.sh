#!/usr/bin/env bash
# Builds quiesce (release) and starts it with its defaults; extra arguments go to quiesce.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
cmake --preset release >/dev/null
cmake --build --preset release --target quiesce
exec build/release/app/quiesce "$@"
