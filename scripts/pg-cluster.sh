#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster on loopback for trying quiesce with --store postgres:
#   scripts/pg-cluster.sh start [DIR]   prints the database URL (the cluster lives in DIR)
#   scripts/pg-cluster.sh stop DIR
# As root, initdb and pg_ctl run as the postgres user (initdb refuses root).
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
[[ -x $bin/initdb ]] || { echo "pg-cluster: install postgresql-15 first" >&2; exit 1; }
as_owner() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case ${1:-} in
  start)
    dir=${2:-$(mktemp -d /tmp/quiesce-pg.XXXXXX)}
    mkdir -p "$dir"
    [[ $(id -u) == 0 ]] && chown postgres: "$dir"
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_owner "$bin/initdb" -D "$dir/data" -U quiesce --auth=trust -E UTF8 >/dev/null
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o \
      "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=200" start >/dev/null
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U quiesce quiesce
    echo "postgresql://quiesce@127.0.0.1:$port/quiesce"
    echo "pg-cluster: started in $dir (stop: $0 stop $dir)" >&2
    ;;
  stop)
    [[ -n ${2:-} ]] || { echo "usage: $0 stop DIR" >&2; exit 2; }
    as_owner "$bin/pg_ctl" -D "$2/data" -m fast -w stop >/dev/null
    rm -rf "$2"
    ;;
  *)
    echo "usage: $0 start [DIR] | stop DIR" >&2
    exit 2
    ;;
esac
