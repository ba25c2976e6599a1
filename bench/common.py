"""What every benchmark group shares: the command line, the servers and clients it starts, and
the measuring helpers. Imported by bench.py and replicas.py."""
import argparse
import calendar
import http.client
import json
import os
import platform
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results.json"))
ap.add_argument("--quick", action="store_true", help="shorter runs, fewer repetitions")
ap.add_argument("--only", choices=["bursts", "commands", "durability", "flood", "metrics", "peers", "shared", "stream"], help="run one group and print its table")
ap.add_argument("--baseline", help="--only metrics, peers or bursts: the build to compare with (e.g. one from before a change)")
opts = ap.parse_args()
os.environ["QUIESCE_BIN"] = os.path.join(opts.build, "app", "quiesce")
WSLOAD = os.path.join(opts.build, "bench", "quiesce-wsload")
from harness import Server  # noqa: E402  (after QUIESCE_BIN is set)

WRK_SECONDS = 3 if opts.quick else 10
REPEATS = 5 if opts.quick else 20
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 streams need 20,000 fds
BIG = 10000 if hard >= 10100 else hard - 100  # per process: the server and the client each
results = {"machine": {"cores": os.cpu_count(), "kernel": platform.release(),
                       "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                                    if l.startswith("model name")), "?"),
                       "date": time.strftime("%Y-%m-%d")}}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- helpers ----------------------------------------------------------------------------------
def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]


def wrk(url, script=None, threads=2, conns=64):
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{WRK_SECONDS}s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", os.path.join(ROOT, "bench", script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": to_ms(lat["50"]), "p99_ms": to_ms(lat["99"]), "requests": reqs,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def nginx(workers):
    d = tempfile.mkdtemp()
    conf = open(os.path.join(ROOT, "bench", "nginx.conf")).read()
    conf = re.sub(r"worker_processes \d+;", f"worker_processes {workers};", conf)
    conf = conf.replace("/tmp/quiesce-bench-nginx.pid", os.path.join(d, "nginx.pid"))
    path = os.path.join(d, "nginx.conf")
    open(path, "w").write(conf)
    p = subprocess.Popen(["nginx", "-c", path, "-p", d], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", 18080, timeout=1).request("GET", "/")
            break
        except OSError:
            time.sleep(0.05)
    return p


def wait_exit(proc, timeout):
    """(exit code, wall-clock ms of the exit). Popen.wait with a timeout polls with sleeps that
    grow to 50 ms, and an exit time taken after it carries that: 13 ms more for a 0.3 s `sleep`.
    A pidfd is readable the moment the process exits."""
    fd = os.pidfd_open(proc.pid)
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        exited_ms = time.time() * 1000
    finally:
        os.close(fd)
    return proc.wait(), exited_ms


def quiesce(**knobs):
    """A server with the bench's defaults; knobs override them (threads=1 is --threads 1)."""
    flags = {"log_level": "warn", "workers": 64, "queue_capacity": 10000000,
             "event_retention": 1000, "task_seconds": 0, "max_connections": 15000,
             "max_websockets": 15000, **knobs}
    return Server(*[a for k, v in flags.items() for a in ("--" + k.replace("_", "-"), v)])


def wsload(mode, port, *args, stdin=None):
    return subprocess.Popen([WSLOAD, mode, "--port", str(port), *map(str, args)],
                            stdout=subprocess.PIPE, stdin=stdin, text=True)


def line(proc):
    return json.loads(proc.stdout.readline())


def rising_rates(rates, run_at):
    """run_at(rate) -> wsload rate's line, for each rate until a run closes a client (1013).
    Returns every run and the best one in which nobody was closed (None if there was none)."""
    runs = []
    for rate in rates:
        r = run_at(rate)
        r["asked_tasks_per_second"] = rate
        runs.append(r)
        if r["closed_during_run"]:
            break
    clean = [r for r in runs if not r["closed_during_run"]]
    return runs, max(clean, key=lambda r: r["frames_per_second"]) if clean else None


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def unix_ms(ts):  # the server's log timestamps: RFC 3339 UTC with milliseconds
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(ts[20:23])


# --- HTTP -------------------------------------------------------------------------------------


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
