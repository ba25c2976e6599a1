"""quiesce beside its Node.js peer (bench/peers/node), the same load client against each in one
run: memory per idle stream, one event's fan-out (to 5,000 and to 10,000), frames/s to 1,000
subscribers, POST /v1/tasks (and nginx's fixed 202 as the ceiling), the drain with 10,000 streams.
Both keep tasks in memory. `bench/run.sh --only peers [--baseline BUILD_DIR]`: with a baseline,
that build's quiesce is measured too, in the same run (before/after a change)."""
import json
import os
import signal
import subprocess
import time

import harness
from common import (BIG, ROOT, WRK_SECONDS, cpu_seconds, free_port, line, log, nginx, opts, quiesce, wait_exit, wrk,
                    wsload)
from streams import bench_capacity, bench_fanout, bench_rate

NODE_DIR = os.path.join(ROOT, "bench", "peers", "node")


class NodePeer:
    """bench/peers/node/server.js on a free port, with the bench's knobs."""

    def __init__(self):
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
            subprocess.run(["npm", "ci", "--prefix", NODE_DIR, "--no-audit", "--no-fund", "--loglevel=error"],
                           check=True)
        self.port = free_port()
        self.proc = subprocess.Popen(["node", os.path.join(NODE_DIR, "server.js"), "--port", str(self.port),
                                      "--workers", "64", "--queue-capacity", "10000000"],
                                     stdout=subprocess.PIPE, text=True)
        json.loads(self.proc.stdout.readline())  # {"msg":"listening"}

    def close(self):
        self.proc.kill()
        self.proc.wait()


def quiesce_at(binary):
    def start():
        harness.BIN = binary
        return quiesce(store="memory", close_spread=0)  # the drain closes every stream at once
    return start


def servers():
    out = [("quiesce", quiesce_at(os.environ["QUIESCE_BIN"]))]
    if opts.baseline:
        out.insert(0, ("baseline", quiesce_at(os.path.join(opts.baseline, "app", "quiesce"))))
    return out + [("node", NodePeer)]


def measure(start, n):
    return {"kib_per_idle_stream": bench_capacity(n, start)["kib_per_connection"],
            "fanout": bench_fanout(n, start),
            "fanout_big": bench_fanout(BIG, start),
            "frames_per_second_1000": bench_rate(1000, start)["best_frames_per_second"],
            "post": post_rate(start),
            "drain": drain_with_streams(start, BIG)}


def post_rate(start):
    """wrk's req/s counts admissions: a server whose queue grows looks as fast as one that keeps
    up. So the server is then sent SIGTERM, and its drain (the tasks admitted but not yet run)
    goes into tasks_per_second, the end-to-end figure: accepted tasks / (wrk's time + drain)."""
    s = start()
    try:
        r = wrk(f"http://127.0.0.1:{s.port}/v1/tasks", "post_task.lua")
        began = time.time() * 1000
        s.proc.send_signal(signal.SIGTERM)
        _, exited = wait_exit(s.proc, 120)
        r["drain_after_ms"] = exited - began
        r["tasks_per_second"] = (r["requests"] - r["non_2xx"]) / (WRK_SECONDS + r["drain_after_ms"] / 1000)
        return r
    finally:
        s.close()


def nginx_post():
    """The ceiling for admission: nginx answering a fixed 202 with two workers, quiesce's thread
    count on this machine's two cores."""
    ng = nginx(2)
    try:
        r = wrk("http://127.0.0.1:18080/v1/tasks", "post_task.lua")
        r["tasks_per_second"] = r["rps"]  # a fixed 202 runs nothing: each answer is the whole job
        return {"post": r}
    finally:
        ng.terminate()
        ng.wait()


def drain_with_streams(start, n):
    """SIGTERM to exit with n idle streams open and no task: the drain's own cost (each stream
    told `draining` and closed 1012, the close handshakes, the exit)."""
    log(f"drain: SIGTERM to exit with {n} streams")
    s = start()
    try:
        w = wsload("hold", s.port, "--connections", n, stdin=subprocess.PIPE)
        opened = line(w)
        cpu0 = cpu_seconds(s.proc.pid)
        began = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        # wait4 reaps the server and gives its CPU to the end; Popen is told the outcome.
        _, status, usage = os.wait4(s.proc.pid, 0)
        ms = (time.monotonic() - began) * 1000
        s.proc.returncode = rc = os.waitstatus_to_exitcode(status)
        server_cpu_ms = (usage.ru_utime + usage.ru_stime - cpu0) * 1000
        closes = line(w)
        w.stdin.close()
        w.wait()
    finally:
        s.close()
    return {"streams": opened["opened"], "exit_code": rc, "codes": closes["codes"], "ms": ms,
            "server_cpu_ms": server_cpu_ms, "client_close_window_ms": closes.get("close_window_ms"),
            "client_cpu_per_second": closes.get("client_cpu_per_second")}


def bench_peers(n=5000):
    r = {}
    for name, start in servers():
        log(f"peers: {name} ({n} idle streams, fan-out to {n}, rate to 1000, POST for {WRK_SECONDS} s)")
        r[name] = measure(start, n)
    log("peers: nginx, a fixed 202")
    r["nginx"] = nginx_post()
    return r


def print_peers(r):
    rows = (("KiB per idle stream (lower is better)", lambda m: m["kib_per_idle_stream"]),
            ("fan-out p50 ms (lower)", lambda m: m["fanout"]["p50_ms"]),
            ("fan-out p99 ms (lower)", lambda m: m["fanout"]["p99_ms"]),
            (f"fan-out to {BIG:,} p50 ms (lower)", lambda m: m["fanout_big"]["p50_ms"]),
            (f"fan-out to {BIG:,} p99 ms (lower)", lambda m: m["fanout_big"]["p99_ms"]),
            ("frames/s to 1,000, nobody closed (higher)", lambda m: m["frames_per_second_1000"]),
            ("POST /v1/tasks req/s, admissions (higher)", lambda m: m["post"]["rps"]),
            ("POST, drain after wrk ms (lower)", lambda m: m["post"]["drain_after_ms"]),
            ("POST, tasks/s end to end (higher)", lambda m: m["post"]["tasks_per_second"]),
            (f"SIGTERM -> exit with {BIG:,} streams, ms (lower)", lambda m: m["drain"]["ms"]),
            # Who was busy: CPU seconds per wall second of the timed windows (1.0 = one core).
            # The load client is one thread: near 1.0, the figure above it is the client's.
            (f"fan-out to {BIG:,}: client CPU per second", lambda m: m["fanout_big"]["client_cpu_per_second"]),
            (f"fan-out to {BIG:,}: server CPU per second", lambda m: m["fanout_big"]["server_cpu_per_second"]),
            (f"exit with {BIG:,}: server CPU ms", lambda m: m["drain"]["server_cpu_ms"]),
            (f"exit with {BIG:,}: client CPU per second, first close to last",
             lambda m: m["drain"]["client_cpu_per_second"]))
    def value(m, get):  # nginx has the POST figure only
        try:
            return get(m)
        except KeyError:
            return None

    names = list(r)
    print("| figure | " + " | ".join(names) + " | quiesce / node | quiesce / nginx |")
    print("|---" * (len(names) + 3) + "|")
    for name, get in rows:
        v = {n: value(r[n], get) for n in names}
        cells = " | ".join("-" if v[n] is None else f"{v[n]:,.2f}" if v[n] < 10 else f"{v[n]:,.1f}"
                           for n in names)
        ratios = [f"{v['quiesce'] / v[p]:.2f}" if v.get(p) else "-" for p in ("node", "nginx")]
        print(f"| {name} | {cells} | {' | '.join(ratios)} |")
