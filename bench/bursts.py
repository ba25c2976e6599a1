"""Bursts to many subscribers: the sqlite store's group commits hand each stream many events at
once. 200 idle subscribers (quiesce-wsload hold), a POST flood of 10 ms tasks (wrk -c32, 8
workers, two threads). Per POST: the server's CPU and its system calls that send or hold
segments, counted by `perf stat` on syscall tracepoints (left out where perf cannot count them).
`bench/run.sh --only bursts [--baseline BUILD_DIR]`: with a baseline, the two builds alternate."""
import os
import re
import signal
import subprocess
import time

import harness
from common import cpu_seconds, line, log, opts, quiesce, wrk, wsload

SUBSCRIBERS = 200
CALLS = ["sendmsg", "setsockopt", "epoll_ctl", "epoll_wait"]


def syscall_counter(pid):
    """perf stat on the server's system calls, or None where perf cannot count them."""
    events = ",".join(f"syscalls:sys_enter_{c}" for c in CALLS)
    try:
        p = subprocess.Popen(["perf", "stat", "-x,", "-e", events, "-p", str(pid)],
                             stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        return None
    time.sleep(0.3)  # attached before the load starts
    return p if p.poll() is None else None


def counted(perf):
    if perf is None:
        return {}
    perf.send_signal(signal.SIGINT)
    out = {}
    for row in perf.communicate()[1].splitlines():
        f = row.split(",")
        m = re.match(r"syscalls:sys_enter_(\w+)", f[2]) if len(f) > 2 else None
        if m and f[0].isdigit():
            out[m.group(1)] = int(f[0])
    return out


def one_round(binary):
    harness.BIN = binary
    s = quiesce(store="sqlite", workers=8, threads=2)
    hold = wsload("hold", s.port, "--connections", SUBSCRIBERS, stdin=subprocess.PIPE)
    try:
        line(hold)  # every stream open
        perf = syscall_counter(s.proc.pid)
        cpu = cpu_seconds(s.proc.pid)
        w = wrk(f"http://127.0.0.1:{s.port}/v1/tasks", "post_10ms_task.lua", conns=32)
        cpu = cpu_seconds(s.proc.pid) - cpu
        calls = counted(perf)
        posts = w["requests"]
        return {"posts_per_second": w["rps"], "cpu_us_per_post": cpu / posts * 1e6,
                **{f"{c}_per_post": n / posts for c, n in calls.items()}}
    finally:
        hold.kill()
        hold.wait()
        s.close()  # killed: the queue it leaves is not what this measures


def bench_bursts():
    builds = [("current", os.environ["QUIESCE_BIN"])]
    if opts.baseline:
        builds.insert(0, ("baseline", os.path.join(opts.baseline, "app", "quiesce")))
    runs = {name: [] for name, _ in builds}
    for i in range(2 if opts.quick else 4):
        for name, binary in builds:
            r = one_round(binary)
            log(f"bursts round {i}, {name}: {r}")
            runs[name].append(r)
    return {"subscribers": SUBSCRIBERS, "runs": runs}


def print_bursts(r):
    keys = ["posts_per_second", "cpu_us_per_post"] + [f"{c}_per_post" for c in CALLS]
    names = list(r["runs"])
    print(f"| {r['subscribers']} subscribers, sqlite, 10 ms tasks | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for k in keys:
        cells = []
        for n in names:
            v = [x[k] for x in r["runs"][n] if k in x]
            cells.append(" / ".join(f"{x:,.1f}" if x < 1000 else f"{x:,.0f}" for x in v) or "-")
        print(f"| {k.replace('_', ' ')} | " + " | ".join(cells) + " |")
