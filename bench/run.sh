#!/usr/bin/env bash
# Benchmarks of issue 2, printed as numbers. Not part of CI's pass/fail.
#   bench/run.sh [BUILD_DIR]    (default build/release; builds it if missing)
# Needs wrk and nginx-light (Debian); run as root to have them installed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
if [[ ! -x $build/app/quiesce ]]; then
  cmake --preset release >/dev/null && cmake --build --preset release --target quiesce >/dev/null
fi
for tool in wrk nginx; do
  command -v $tool >/dev/null || { [[ $(id -u) == 0 ]] && apt-get install -y -qq wrk nginx-light >/dev/null; }
done
export QUIESCE_BIN=$PWD/$build/app/quiesce
py=/usr/bin/python3
harness=$PWD/tests/integration
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT

rps() { grep -E '^Requests/sec' "$1" | awk '{print $2}'; }
lat() { grep -E '^ +Latency' "$1" | awk '{print $2}'; }
codes() { grep -E 'Non-2xx' "$1" | awk '{print $NF}' || true; }

start_quiesce() {  # $1: network threads (0: the default, the core count)
  $QUIESCE_BIN --bind 127.0.0.1 --port 0 --admin-port 0 --workers 64 --queue-capacity 10000000 \
    --event-retention 1000 --log-level warn --threads "$1" > "$out/q.log" &
  qpid=$!
  for _ in $(seq 100); do grep -q listening "$out/q.log" 2>/dev/null && break; sleep 0.05; done
  port=$(grep -o '"port":[0-9]*' "$out/q.log" | head -1 | cut -d: -f2)
  aport=$(grep -o '"admin_port":[0-9]*' "$out/q.log" | head -1 | cut -d: -f2)
}

nginx -c "$PWD/bench/nginx.conf" -p "$out" 2>"$out/nginx.err" &
sleep 0.5
wrk -t2 -c64 -d10s -s bench/post_task.lua "http://127.0.0.1:18080/v1/tasks" > "$out/nginx.txt"
kill "$(cat /tmp/quiesce-bench-nginx.pid)" 2>/dev/null || true

echo "wrk -t2 -c64 -d10s, same machine, one run (quiesce's zero-second tasks measure admission):"
printf '  %-36s %10s req/s  latency %s\n' "nginx fixed 202" "$(rps "$out/nginx.txt")" "$(lat "$out/nginx.txt")"
# Tasks are POSTed first (the process then holds them), then readyz is measured.
for threads in 0 1; do
  start_quiesce $threads
  wrk -t2 -c64 -d10s -s bench/post_task.lua "http://127.0.0.1:$port/v1/tasks" > "$out/post.txt"
  wrk -t2 -c64 -d10s "http://127.0.0.1:$aport/readyz" > "$out/ready.txt"
  rss=$(awk '/VmRSS/{print $2}' /proc/$qpid/status)
  kill -TERM $qpid; wait $qpid || true
  label=$([[ $threads == 0 ]] && echo "--threads $(nproc) (default)" || echo "--threads 1")
  for f in post ready; do
    name=$([[ $f == post ]] && echo "POST /v1/tasks" || echo "GET /readyz")
    printf '  %-36s %10s req/s  latency %s  non-2xx %s  (%.2f of nginx)\n' "quiesce $name $label" \
      "$(rps "$out/$f.txt")" "$(lat "$out/$f.txt")" "$(codes "$out/$f.txt")" \
      "$(awk -v a="$(rps "$out/$f.txt")" -v n="$(rps "$out/nginx.txt")" 'BEGIN{print a/n}')"
  done
  echo "  RSS after those runs (every task kept in memory): $rss KiB"
done
$py bench/idle_websockets.py "$harness" 1000
$py bench/drain_time.py "$harness"
