"""quiesce beside its Node.js peer (bench/peers/node), the same load client against each in one
run: memory per idle stream, one event's fan-out, frames/s to 1,000 subscribers, POST /v1/tasks.
Both keep tasks in memory. `bench/run.sh --only peers`."""
import json
import os
import subprocess

from common import ROOT, WRK_SECONDS, free_port, log, quiesce, wrk
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


def servers():
    return (("quiesce", lambda: quiesce(store="memory")), ("node", NodePeer))


def measure(start, n):
    return {"kib_per_idle_stream": bench_capacity(n, start)["kib_per_connection"],
            "fanout": bench_fanout(n, start),
            "frames_per_second_1000": bench_rate(1000, start)["best_frames_per_second"],
            "post": post_rate(start)}


def post_rate(start):
    s = start()
    try:
        return wrk(f"http://127.0.0.1:{s.port}/v1/tasks", "post_task.lua")
    finally:
        s.close()


def bench_peers(n=5000):
    r = {}
    for name, start in servers():
        log(f"peers: {name} ({n} idle streams, fan-out to {n}, rate to 1000, POST for {WRK_SECONDS} s)")
        r[name] = measure(start, n)
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
