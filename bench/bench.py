"""Every benchmark of issue 3 in one run: prints a table with each target met / not met and
writes the numbers as JSON. Driven by bench/run.sh; not part of CI's pass/fail.

    /usr/bin/python3 bench/bench.py --build build/release --out bench/results.json [--quick]
"""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from common import (BIG, REPEATS, WSLOAD, WRK_SECONDS, cpu_seconds, free_port, line, log, nginx, opts, pct,  # noqa: F401
                    quiesce, results, unix_ms, wait_exit, wrk, wsload)
from replicas import bench_shared, bench_stream, print_shared, print_stream
from streams import bench_capacity, bench_fanout, bench_rate


def bench_http():
    """POST and readyz against nginx's fixed 202, at 1 and 2 threads. The memory store: this is
    admission's own cost; what the sqlite store adds is bench_durability's figure."""
    out = {}
    for threads in (1, 2):
        log(f"http: nginx and quiesce at {threads} thread(s)")
        ng = nginx(threads)
        try:
            ref = wrk("http://127.0.0.1:18080/v1/tasks", "post_task.lua")
        finally:
            ng.terminate()
            ng.wait()
        s = quiesce(threads=threads, store="memory")
        try:
            cpu0 = cpu_seconds(s.proc.pid)
            post = wrk(f"http://127.0.0.1:{s.port}/v1/tasks", "post_task.lua")
            cpu = cpu_seconds(s.proc.pid) - cpu0
            original = wrk(f"http://127.0.0.1:{s.port}/v1/create-task/", "post_empty.lua")
            ready = wrk(f"http://127.0.0.1:{s.admin_port}/readyz")
        finally:
            s.close()
        accepted = post["requests"] - post["non_2xx"]
        out[f"threads_{threads}"] = {
            "nginx_fixed_202": ref, "post_v1_tasks": post, "post_create_task": original,
            "get_readyz": ready,
            "post_ratio": post["rps"] / ref["rps"], "readyz_ratio": ready["rps"] / ref["rps"],
            "cpu_us_per_task": cpu * 1e6 / max(accepted, 1)}
    return out


# --- drain ------------------------------------------------------------------------------------
def bench_refuse():
    log(f"drain: SIGTERM to refused connects, {REPEATS} runs")
    times = []
    for _ in range(REPEATS):
        s = quiesce()
        try:
            w = wsload("refuse", s.port, "--pid", s.proc.pid)
            times.append(line(w)["ms"])
            w.wait()
            s.wait(30)
        finally:
            s.close()
    return {"runs": len(times), "p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99),
            "max_ms": max(times)}


def bench_exit_with_streams(n):
    log(f"drain: last task end to exit with {n} streams")
    s = quiesce(close_spread=0, log_level="info")
    try:
        w = wsload("hold", s.port, "--connections", n, stdin=subprocess.PIPE)
        line(w)
        r = s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0.3})
        assert r.status == 202, r.raw
        s.signal(signal.SIGTERM)
        rc, exited = wait_exit(s.proc, 60)
        closes = line(w)
        w.stdin.close()
        w.wait()
        finished = next(l for l in s.logs() if l["msg"] == "tasks finished")
    finally:
        s.close()
    return {"streams": n, "exit_code": rc, "codes": closes["codes"],
            "last_task_to_exit_ms": exited - unix_ms(finished["ts"]),
            "last_task_to_last_close_ms": closes["last_close_unix_ms"] - unix_ms(finished["ts"])}


def bench_exit_with_queue():
    log("drain: 1,000 queued zero-second tasks behind 8 running ones")
    s = quiesce(workers=8, close_spread=0)
    try:
        conn = s.connection()
        blockers = []
        for _ in range(8):
            conn.request("POST", "/v1/tasks", json.dumps({"kind": "sleep", "seconds": 2}),
                         {"Content-Type": "application/json"})
            blockers.append(json.loads(conn.getresponse().read())["task_id"])
        for _ in range(1000):
            conn.request("POST", "/v1/tasks", json.dumps({"kind": "sleep", "seconds": 0}),
                         {"Content-Type": "application/json"})
            assert conn.getresponse().read()
        starts = []
        for tid in blockers:
            conn.request("GET", f"/v1/tasks/{tid}")
            starts.append(json.loads(conn.getresponse().read())["started_at"])
        conn.close()
        queued = s.request("GET", "/v1/status", admin=True).json["queued"]
        s.signal(signal.SIGTERM)
        rc, exited = wait_exit(s.proc, 60)
    finally:
        s.close()
    blockers_end = max(unix_ms(t) for t in starts) + 2000
    return {"queued_at_sigterm": queued, "exit_code": rc,
            "running_tasks_end_to_exit_ms": exited - blockers_end}


# --- durability -------------------------------------------------------------------------------
def bench_durability():
    """POST /v1/tasks with the memory store and the sqlite store (WAL, synchronous=FULL, group
    commit) on the same machine in one go; each task runs to its end (0 s), so the journal writes
    its queued, running and succeeded changes. Then how long a start-up takes to load 10,000
    stored tasks."""
    out = {}
    for store in ("memory", "sqlite"):
        for conns in (64, 1):
            log(f"durability: {store}, {conns} connection(s)")
            s = quiesce(threads=2, store=store)
            try:
                out[f"{store}_c{conns}"] = wrk(f"http://127.0.0.1:{s.port}/v1/tasks", "post_task.lua",
                                               threads=min(2, conns), conns=conns)
            finally:
                s.close()
    with tempfile.TemporaryDirectory() as d:
        s = quiesce(threads=2, data_dir=d, task_retention=10000)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", s.port)
            for _ in range(10000):
                conn.request("POST", "/v1/tasks", body='{"seconds":0}', headers={"Content-Type": "application/json"})
                conn.getresponse().read()
            s.signal(signal.SIGTERM)
            s.wait(60)
        finally:
            s.close()
        starts = []
        for _ in range(5):
            t0 = time.monotonic()
            s = quiesce(threads=2, data_dir=d, task_retention=10000)
            starts.append((time.monotonic() - t0) * 1000)
            s.signal(signal.SIGTERM)
            s.wait(60)
            s.close()
        out["start_with_10000_tasks_ms"] = sorted(starts)[len(starts) // 2]
        out["db_mib"] = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)) / 2**20
    # The writer alone, at a fixed commit size: the figure that resolves a change to the journal
    # (bench/journal.cpp). Best of three, the machine's noise being all on the slow side.
    runs = []
    for _ in range(3):
        text = subprocess.run([os.path.join(opts.build, "bench", "quiesce-journal-bench"), "--batch", "12"],
                              check=True, capture_output=True, text=True).stdout
        m = re.search(r"([\d.]+) us CPU per task, ([\d.]+) us wall per task, ([\d.]+) bytes", text)
        runs.append({"cpu_us": float(m[1]), "wall_us": float(m[2]), "bytes": float(m[3])})
    out["journal_batch12"] = min(runs, key=lambda r: r["cpu_us"])
    out["ratio_c64"] = out["sqlite_c64"]["rps"] / out["memory_c64"]["rps"]
    out["ratio_c1"] = out["sqlite_c1"]["rps"] / out["memory_c1"]["rps"]
    return out


def print_durability(r):
    print("| POST /v1/tasks | connections | req/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for conns in (64, 1):
        for store in ("memory", "sqlite"):
            m = r[f"{store}_c{conns}"]
            print(f"| {store} | {conns} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} |")
    print(f"\nsqlite / memory throughput: {r['ratio_c64']:.2f} at 64 connections, {r['ratio_c1']:.2f} at 1; "
          f"start-up with 10,000 stored tasks: {r['start_with_10000_tasks_ms']:.0f} ms (to `listening`, "
          f"median of 5; database {r['db_mib']:.1f} MiB)")
    if "journal_batch12" in r:
        j = r["journal_batch12"]
        print(f"\nThe journal alone (`quiesce-journal-bench --batch 12`, best of 3): {j['cpu_us']:.1f} us of CPU "
              f"and {j['bytes']:,.0f} bytes written per task")


# --- the shared store (PostgreSQL) ------------------------------------------------------------


def instructions_per_request(binary, what, store="memory"):
    """Instructions (valgrind callgrind: repeatable whatever else the machine does) the server
    spends per request, from the difference between 500 and 2,500 sequential requests. With the
    sqlite store they include its writer thread's."""
    totals = []
    for n in (500, 2500):
        port, admin = free_port(), free_port()
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg", binary,
                                  "--store", store, "--data-dir", d, "--threads", "1", "--task-seconds", "0",
                                  "--log-level", "warn", "--bind", "127.0.0.1", "--port", str(port),
                                  "--admin-port", str(admin)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _ in range(600):
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port)
                    conn.request("GET", "/v1/health")
                    conn.getresponse().read()
                    break
                except OSError:
                    time.sleep(0.1)
            for _ in range(n):
                if what == "post":
                    conn.request("POST", "/v1/tasks", body='{"seconds":0}', headers={"Content-Type": "application/json"})
                else:
                    conn.request("GET", "/v1/health")
                conn.getresponse().read()
            time.sleep(1)  # the last tasks end
            p.send_signal(signal.SIGTERM)
            totals.append(int(re.search(r"Collected : (\d+)", p.communicate()[1]).group(1)))
    return (totals[1] - totals[0]) / 2000


def bench_metrics(baseline):
    """What the metrics cost per request: `baseline`'s binary (a build from before a change)
    against this build's, in instructions (callgrind) and in req/s (wrk, alternating, medians of
    three rounds; noisy on a shared machine), memory store so that the disk hides nothing."""
    import harness
    builds = {"baseline": os.path.join(baseline, "app", "quiesce"), "current": os.environ["QUIESCE_BIN"]}
    out = {}
    for name, binary in builds.items():
        for load in ("post", "health"):
            log(f"metrics: callgrind, {name}, {load}")
            out[f"{name}_{load}_instructions"] = instructions_per_request(binary, load)
        log(f"metrics: callgrind, {name}, post, sqlite")
        out[f"{name}_post_sqlite_instructions"] = instructions_per_request(binary, "post", "sqlite")
    out.update(claims_by_build(builds))
    runs = {(b, load): [] for b in builds for load in ("post", "health")}
    for round_ in range(3):
        for name, binary in builds.items():
            log(f"metrics: wrk round {round_ + 1}, {name}")
            harness.BIN = binary
            s = quiesce(threads=1, store="memory")
            try:
                runs[(name, "post")].append(wrk(f"http://127.0.0.1:{s.port}/v1/tasks", "post_task.lua", threads=1))
                runs[(name, "health")].append(wrk(f"http://127.0.0.1:{s.port}/v1/health", threads=1))
            finally:
                s.close()
    out.update({f"{b}_{load}_rps": sorted(r["rps"] for r in v)[1] for (b, load), v in runs.items()})
    return out


def claims_by_build(builds):
    """Claims per second with 3 replicas on one PostgreSQL, each build in turn, three rounds
    (the median): what the shared store's engine costs. None without PostgreSQL's binaries."""
    import harness
    import postgres
    from replicas import claims_per_second
    try:
        pg = postgres.Postgres()
    except Exception as e:  # no PostgreSQL here: the table says so
        log(f"metrics: no PostgreSQL for the claims ({e})")
        return {}
    runs = {b: [] for b in builds}
    try:
        for round_ in range(3):
            for name, binary in builds.items():
                harness.BIN = binary
                runs[name].append(claims_per_second(pg, 3000))
    finally:
        pg.close()
    return {f"{b}_claims_per_s": sorted(v)[1] for b, v in runs.items()}


if opts.only == "metrics":
    r = bench_metrics(opts.baseline)
    print("| per request (--threads 1, memory store) | baseline | current | current / baseline |")
    print("|---|---|---|---|")
    for load, name in (("post", "POST /v1/tasks (the task runs: 3 status changes)"), ("health", "GET /v1/health")):
        for unit, key in (("instructions", "instructions"), ("req/s, wrk -t1 -c64", "rps")):
            b, c = r[f"baseline_{load}_{key}"], r[f"current_{load}_{key}"]
            print(f"| {name}: {unit} | {b:,.0f} | {c:,.0f} | {c / b:.3f} |")
    for key, name in (("post_sqlite_instructions", "POST /v1/tasks, sqlite store: instructions"),
                      ("claims_per_s", "3 replicas on PostgreSQL: queued tasks run per second")):
        if f"current_{key}" in r:
            b, c = r[f"baseline_{key}"], r[f"current_{key}"]
            print(f"| {name} | {b:,.0f} | {c:,.0f} | {c / b:.3f} |")
    sys.exit(0)

def flood_group():
    from flood import bench_flood, print_flood
    return bench_flood, print_flood


def bursts_group():
    from bursts import bench_bursts, print_bursts
    return bench_bursts, print_bursts


def commands_group():
    from commands import bench_commands, print_commands
    return bench_commands, print_commands


def peers_group():
    from peers import bench_peers, print_peers
    return bench_peers, print_peers


# One group, its table and its own results file (results-<group>.json).
groups = {"peers": peers_group, "flood": flood_group, "bursts": bursts_group,
          "commands": commands_group,
          "stream": lambda: (bench_stream, print_stream),
          "shared": lambda: (bench_shared, print_shared),
          "durability": lambda: (bench_durability, print_durability)}
if opts.only in groups:
    run, show = groups[opts.only]()
    r = run()
    show(r)
    # --out results.json writes results-<group>.json; a name that already says its group is kept.
    out = opts.out if opts.out.endswith(f"-{opts.only}.json") else opts.out.replace(".json", f"-{opts.only}.json")
    with open(out, "w") as f:
        json.dump({"machine": results["machine"], opts.only: r}, f, indent=1)
    sys.exit(0)

# --- run --------------------------------------------------------------------------------------
results["http"] = bench_http()
results["durability"] = bench_durability()
results["capacity"] = [bench_capacity(1000), bench_capacity(BIG)]
results["fanout"] = [bench_fanout(1000), bench_fanout(BIG)]
results["rate_1000"] = bench_rate(1000)
results["drain"] = {"sigterm_to_refused": bench_refuse(),
                    "exit_with_streams": [bench_exit_with_streams(1000), bench_exit_with_streams(BIG)],
                    "exit_with_queue": bench_exit_with_queue()}

h = results["http"]
targets = [
    ("POST /v1/tasks, memory store >= 0.5 x nginx (1 thread)", h["threads_1"]["post_ratio"], ">=", 0.5),
    ("POST /v1/tasks, memory store >= 0.5 x nginx (2 threads)", h["threads_2"]["post_ratio"], ">=", 0.5),
    ("GET /readyz >= 1.0 x nginx (1 thread)", h["threads_1"]["readyz_ratio"], ">=", 1.0),
    ("GET /readyz >= 0.7 x nginx (2 threads)", h["threads_2"]["readyz_ratio"], ">=", 0.7),
    ("POST /v1/tasks sqlite >= 0.8 x memory (64 connections)", results["durability"]["ratio_c64"], ">=", 0.8),
    (f"RSS per idle WebSocket at {BIG} <= 6 KiB", results["capacity"][1]["kib_per_connection"], "<=", 6),
    (f"fan-out to {BIG}: p99 <= 100 ms", results["fanout"][1]["p99_ms"], "<=", 100),
    ("frames/s to 1,000 subscribers >= 300,000", results["rate_1000"]["best_frames_per_second"], ">=", 300000),
    ("SIGTERM -> connect refused p99 <= 5 ms", results["drain"]["sigterm_to_refused"]["p99_ms"], "<=", 5),
    ("last task end -> exit, 1,000 streams <= 50 ms",
     results["drain"]["exit_with_streams"][0]["last_task_to_exit_ms"], "<=", 50),
    (f"last task end -> exit, {BIG} streams <= 300 ms",
     results["drain"]["exit_with_streams"][1]["last_task_to_exit_ms"], "<=", 300),
]
results["targets"] = [{"target": name, "value": v, "met": v >= goal if op == ">=" else v <= goal}
                      for name, v, op, goal in targets]
with open(opts.out, "w") as f:
    json.dump(results, f, indent=1)

# The table (Markdown, so bench/README.md can hold it as printed).
print(f"machine: {results['machine']['cores']} cores, {results['machine']['cpu']}, "
      f"kernel {results['machine']['kernel']}, {results['machine']['date']}; "
      f"wrk -t2 -c64 -d{WRK_SECONDS}s on the same cores\n")
print("| HTTP (memory store) | threads | req/s | p50 ms | p99 ms | of nginx |")
print("|---|---|---|---|---|---|")
for t in (1, 2):
    r = h[f"threads_{t}"]
    for name, key in (("nginx fixed 202", "nginx_fixed_202"), ("POST /v1/tasks", "post_v1_tasks"),
                      ("POST /v1/create-task/", "post_create_task"), ("GET /readyz", "get_readyz")):
        m = r[key]
        print(f"| {name} | {t} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
              f"{m['rps'] / r['nginx_fixed_202']['rps']:.2f} |")
print(f"\nCPU per task end to end (POST /v1/tasks at saturation): "
      f"{h['threads_1']['cpu_us_per_task']:.0f} us (1 thread), {h['threads_2']['cpu_us_per_task']:.0f} us (2 threads)\n")
print_durability(results["durability"])
print()
print("| WebSockets | value |")
print("|---|---|")
for c in results["capacity"]:
    print(f"| {c['connections']:,} idle streams: RSS per stream | {c['kib_per_connection']:.1f} KiB |")
    print(f"| {c['connections']:,} idle streams: opened per second | {c['opened_per_second']:,.0f} |")
for f in results["fanout"]:
    print(f"| one event to {f['subscribers']:,}: p50 / p99 / max | {f['p50_ms']:.1f} / {f['p99_ms']:.1f} / "
          f"{f['max_ms']:.1f} ms ({f['samples']:,} of {f['expected']:,} samples) |")
print(f"| frames/s to 1,000 subscribers, nobody closed | {results['rate_1000']['best_frames_per_second']:,.0f} |")
d = results["drain"]
print(f"| SIGTERM -> refused, {d['sigterm_to_refused']['runs']} runs: p50 / p99 / max | "
      f"{d['sigterm_to_refused']['p50_ms']:.2f} / {d['sigterm_to_refused']['p99_ms']:.2f} / "
      f"{d['sigterm_to_refused']['max_ms']:.2f} ms |")
for e in d["exit_with_streams"]:
    print(f"| last task end -> exit, {e['streams']:,} streams | {e['last_task_to_exit_ms']:.0f} ms "
          f"(last close at {e['last_task_to_last_close_ms']:.0f} ms; codes {e['codes']}; exit {e['exit_code']}) |")
q = d["exit_with_queue"]
print(f"| running tasks end -> exit, {q['queued_at_sigterm']:,} queued zero-second tasks | "
      f"{q['running_tasks_end_to_exit_ms']:.0f} ms (exit {q['exit_code']}) |")
print("\n| target | measured | met |")
print("|---|---|---|")
for t in results["targets"]:
    print(f"| {t['target']} | {t['value']:,.2f} | {'met' if t['met'] else 'NOT met'} |")
