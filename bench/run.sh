#!/usr/bin/env bash
# Every benchmark in one command: prints a Markdown table (targets met / not met) and writes
# bench/results.json. Not part of CI's pass/fail.
#   bench/run.sh [--quick]
#   bench/run.sh --only durability | flood | shared | stream | peers [--baseline BUILD_DIR]
#                | bursts [--baseline BUILD_DIR] | metrics --baseline BUILD_DIR | commands
# Needs wrk and nginx-light (Debian): installed when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release --target quiesce quiesce-wsload quiesce-journal-bench quiesce-spawn-loop >/dev/null
for tool in wrk nginx; do
  command -v $tool >/dev/null || { [[ $(id -u) == 0 ]] && apt-get install -y -qq wrk nginx-light >/dev/null; }
done
ulimit -n "$(ulimit -Hn)"  # 10,000 streams: 20,000 descriptors between server and client
exec /usr/bin/python3 bench/bench.py --build build/release --out bench/results.json "$@"
