"""The shared store's benchmarks (--store postgres, several replicas on one throwaway
PostgreSQL): admission throughput, claims, rescue, and the one event stream across replicas."""
import http.client
import json
import signal
import threading
import time

from common import log, line, opts, quiesce, rising_rates, wrk, wsload


def bench_shared():
    """POST /v1/tasks (each task runs to its end, 0 s) with memory, sqlite and postgres (one
    replica) in one go; then 3 replicas draining a queue of tasks inserted directly into the
    database (claims, runs and fenced ends per second); then SIGKILL of a replica running a task
    to that task running again on a peer."""
    import postgres
    pg = postgres.Postgres()
    out = {}
    try:
        for conns in (64, 1):
            for store in ("memory", "sqlite", "postgres"):
                log(f"shared: {store}, {conns} connection(s)")
                extra = {"database_url": pg.url(pg.new_database())} if store == "postgres" else {}
                s = quiesce(threads=2, store=store, **extra)
                try:
                    out[f"{store}_c{conns}"] = wrk(f"http://127.0.0.1:{s.port}/v1/tasks", "post_task.lua",
                                                   threads=min(2, conns), conns=conns)
                finally:
                    s.close()
        n = 3000 if opts.quick else 10000
        out["claims_per_s_3_replicas"] = claims_per_second(pg, n)
        out["claims_tasks"] = n
        lease = 5
        db = pg.new_database()
        url = pg.url(db)
        knobs = dict(threads=1, store="postgres", database_url=url, workers=1, lease_seconds=lease,
                     max_task_seconds=60)
        a = quiesce(**knobs)
        b = None
        try:
            conn = http.client.HTTPConnection("127.0.0.1", a.port)
            conn.request("POST", "/v1/tasks", body='{"seconds":30}', headers={"Content-Type": "application/json"})
            task = json.loads(conn.getresponse().read())["task_id"]
            a.wait_status(task, "running")  # a runs it; b starts after
            b = quiesce(**knobs)
            killed = time.monotonic()
            a.signal(signal.SIGKILL)
            while pg.psql(f"SELECT status, attempt FROM quiesce_tasks WHERE id = '{task}'", db)[0] != ["running", "2"]:
                time.sleep(0.02)
            out["sigkill_to_rerun_s"] = time.monotonic() - killed
            out["lease_s"] = lease
        finally:
            a.close()
            if b:
                b.close()
    finally:
        pg.close()
    out["ratio_pg_sqlite_c64"] = out["postgres_c64"]["rps"] / out["sqlite_c64"]["rps"]
    out["ratio_pg_sqlite_c1"] = out["postgres_c1"]["rps"] / out["sqlite_c1"]["rps"]
    return out


def claims_per_second(pg, n):
    """3 replicas (16 workers each) drain `n` zero-second tasks inserted straight into a new
    database: claims, runs and fenced ends per second of the service."""
    db = pg.new_database()
    url = pg.url(db)
    s = quiesce(threads=1, store="postgres", database_url=url)  # creates the schema
    s.signal(signal.SIGTERM)
    s.wait(30)
    s.close()
    pg.psql("INSERT INTO quiesce_tasks (id, kind, params, status, message, created_us) "
            "SELECT gen_random_uuid()::text, 'sleep', '{\"seconds\":0.0}', 'queued', 'Task queued', 0 "
            f"FROM generate_series(1, {n})", db)
    log(f"shared: 3 replicas drain {n} queued tasks")
    t0 = time.monotonic()
    replicas = [quiesce(threads=1, store="postgres", database_url=url, workers=16) for _ in range(3)]
    try:
        while int(pg.psql("SELECT count(*) FROM quiesce_tasks WHERE status <> 'succeeded'", db)[0][0]):
            time.sleep(0.05)
        return n / (time.monotonic() - t0)
    finally:
        for r in replicas:
            r.close()


def print_shared(r):
    print("| POST /v1/tasks | connections | req/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for conns in (64, 1):
        for store in ("memory", "sqlite", "postgres"):
            m = r[f"{store}_c{conns}"]
            print(f"| {store} | {conns} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} |")
    print(f"\npostgres / sqlite throughput: {r['ratio_pg_sqlite_c64']:.2f} at 64 connections, "
          f"{r['ratio_pg_sqlite_c1']:.2f} at 1; 3 replicas (16 workers each) ran "
          f"{r['claims_per_s_3_replicas']:,.0f} queued tasks/s ({r['claims_tasks']} tasks); SIGKILL to the "
          f"task running again elsewhere: {r['sigkill_to_rerun_s']:.1f} s with --lease-seconds {r['lease_s']}")


def fanout(sub_ports, post_ports, n, probes):
    """wsload fanout: one task at a time POSTed to post_ports, timed to its `queued` event at n
    subscribers spread over sub_ports."""
    ports = [a for p in sub_ports for a in ("--subscribe-port", p)] + \
            [a for p in post_ports for a in ("--post-port", p)]
    w = wsload("fanout", sub_ports[0], "--connections", n, "--probes", probes, *ports)
    r = line(w)
    w.wait()
    return r


def post_throughput(pg, events):
    """POST req/s on one replica (63 connections), then on three at once (21 each). `events`
    False: the event triggers dropped, to see what the ordering scheme costs."""
    out = {}
    for n in (1, 3):
        db = pg.new_database()
        url = pg.url(db)
        rs = [quiesce(threads=1, store="postgres", database_url=url) for _ in range(n)]
        try:
            if not events:
                pg.psql("DROP TRIGGER quiesce_events_inserted ON quiesce_tasks; "
                        "DROP TRIGGER quiesce_events_updated ON quiesce_tasks", db)
            log(f"stream: POST throughput, {n} replica(s), events {'on' if events else 'off'}, "
                f"fsync {'on' if pg.fsync else 'off'}")
            got = [None] * n

            def load(i):
                got[i] = wrk(f"http://127.0.0.1:{rs[i].port}/v1/tasks", "post_task.lua", threads=1, conns=63 // n)

            ts = [threading.Thread(target=load, args=(i,)) for i in range(n)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            out[f"replicas_{n}"] = sum(g["rps"] for g in got)
        finally:
            for r in rs:
                r.close()
    return out


def bench_stream():
    """The one event stream across replicas: latency from a POST on one replica to its event at
    1,000 clients on another, against one replica (sqlite, and postgres); events per second with 3
    replicas of 1,000 subscribers each before a client is closed 1013; POST throughput with 3
    replicas committing at once against one replica (every commit takes the event counter)."""
    import postgres
    pg = postgres.Postgres()
    probes = 10 if opts.quick else 20
    out = {}
    try:
        log("stream: one event to 1,000 subscribers, one sqlite replica")
        s = quiesce(threads=1, store="sqlite")
        try:
            out["latency_sqlite_1"] = fanout([s.port], [s.port], 1000, probes)
        finally:
            s.close()
        for n, name in ((1, "latency_pg_same"), (2, "latency_pg_across")):
            log(f"stream: one event to 1,000 subscribers, {n} postgres replica(s)")
            url = pg.url(pg.new_database())
            rs = [quiesce(threads=1, store="postgres", database_url=url) for _ in range(n)]
            try:
                out[name] = fanout([rs[-1].port], [rs[0].port], 1000, probes)
            finally:
                for r in rs:
                    r.close()
        def run_at(rate):
            log(f"stream: {rate} tasks/s, 3 postgres replicas with 1,000 subscribers each")
            url = pg.url(pg.new_database())
            rs = [quiesce(threads=1, store="postgres", database_url=url) for _ in range(3)]
            try:
                ports = [a for r in rs for a in ("--subscribe-port", r.port, "--post-port", r.port)]
                w = wsload("rate", rs[0].port, "--connections", 3000, "--seconds", 2 if opts.quick else 5,
                           "--posters", 6, "--rate", rate, "--threads", 2, *ports)
                r = line(w)
                w.wait()
            finally:
                for x in rs:
                    x.close()
            return r

        runs, best = rising_rates((10, 25, 50, 100, 200), run_at)
        out["rate_3x1000"] = {"runs": runs, "best": best}
        out["post"] = {}
        for fsync in (False, True):
            cluster = pg if not fsync else postgres.Postgres(fsync=True)
            try:
                for events in (True, False):
                    key = f"{'fsync' if fsync else 'nofsync'}_{'events' if events else 'no_events'}"
                    out["post"][key] = post_throughput(cluster, events)
            finally:
                if fsync:
                    cluster.close()
    finally:
        pg.close()
    return out


def print_stream(r):
    print("| one event to 1,000 subscribers | p50 ms | p99 ms | max ms | samples |")
    print("|---|---|---|---|---|")
    for key, name in (("latency_sqlite_1", "sqlite, one replica"), ("latency_pg_same", "postgres, one replica"),
                      ("latency_pg_across", "postgres, POST to A, clients on B")):
        m = r[key]
        print(f"| {name} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} | {m['max_ms']:.1f} | "
              f"{m['samples']:,} of {m['expected']:,} |")
    print("\n| 3 postgres replicas x 1,000 subscribers | tasks/s | frames/s | closed 1013 |")
    print("|---|---|---|---|")
    for x in r["rate_3x1000"]["runs"]:
        print(f"| asked {x['asked_tasks_per_second']} tasks/s | {x['tasks_per_second']:,.0f} | "
              f"{x['frames_per_second']:,.0f} | {x['closed_during_run']} |")
    print("\n| POST /v1/tasks req/s (each task runs to its end) | 1 replica | 3 replicas at once | 3 / 1 |")
    print("|---|---|---|---|")
    for key, m in r["post"].items():
        print(f"| {key.replace('_', ' ')} | {m['replicas_1']:,.0f} | {m['replicas_3']:,.0f} | "
              f"{m['replicas_3'] / m['replicas_1']:.2f} |")
