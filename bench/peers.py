"""quiesce beside its Node.js peer (bench/peers/node), the same load client against each in one
run: memory per idle stream, one event's fan-out, frames/s to 1,000 subscribers, POST /v1/tasks.
Both keep tasks in memory. `bench/run.sh --only peers`."""
import json
import os
import subprocess
import time

from common import (ROOT, WRK_SECONDS, free_port, line, log, opts, quiesce, rising_rates, rss_kib,
                    wrk, wsload)

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


def servers():
    return (("quiesce", lambda: quiesce(store="memory")), ("node", NodePeer))


def measure(start, n_idle, n_fanout):
    out = {}
    s = start()
    try:
        before = rss_kib(s.proc.pid)
        w = wsload("hold", s.port, "--connections", n_idle, stdin=subprocess.PIPE)
        opened = line(w)
        time.sleep(0.5)
        out["kib_per_idle_stream"] = (rss_kib(s.proc.pid) - before) / max(opened["opened"], 1)
        w.stdin.close()
        w.wait()
    finally:
        s.close()
    s = start()
    try:
        w = wsload("fanout", s.port, "--connections", n_fanout, "--probes", 10 if opts.quick else 20)
        out["fanout"] = line(w)
        w.wait()
    finally:
        s.close()

    def run_at(rate):
        s = start()
        try:
            w = wsload("rate", s.port, "--connections", 1000, "--seconds", 2 if opts.quick else 5,
                       "--posters", 8, "--rate", rate)
            r = line(w)
            w.wait()
        finally:
            s.close()
        return r

    runs, best = rising_rates((25, 50, 100, 200, 400), run_at)
    out["frames_per_second_1000"] = best["frames_per_second"] if best else 0
    s = start()
    try:
        out["post"] = wrk(f"http://127.0.0.1:{s.port}/v1/tasks", "post_task.lua")
    finally:
        s.close()
    return out


def bench_peers(n=5000):
    r = {}
    for name, start in servers():
        log(f"peers: {name} ({n} idle streams, fan-out to {n}, rate to 1000, POST for {WRK_SECONDS} s)")
        r[name] = measure(start, n, n)
    return r


def print_peers(r):
    q, nd = r["quiesce"], r["node"]
    rows = (("KiB per idle stream (lower is better)", q["kib_per_idle_stream"], nd["kib_per_idle_stream"]),
            ("fan-out p50 ms (lower)", q["fanout"]["p50_ms"], nd["fanout"]["p50_ms"]),
            ("fan-out p99 ms (lower)", q["fanout"]["p99_ms"], nd["fanout"]["p99_ms"]),
            ("frames/s to 1,000, nobody closed (higher)", q["frames_per_second_1000"], nd["frames_per_second_1000"]),
            ("POST /v1/tasks req/s (higher)", q["post"]["rps"], nd["post"]["rps"]))
    print("| figure | quiesce | node | quiesce / node |")
    print("|---|---|---|---|")
    for name, a, b in rows:
        print(f"| {name} | {a:,.1f} | {b:,.1f} | {a / b if b else float('nan'):.2f} |")
