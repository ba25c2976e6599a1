"""Command kinds (bench/README.md, "Command kinds"): tasks per second end to end for `/bin/true`
and a Python child against a bare posix_spawn + waitpid loop with as many loops at once as the
server has workers (the limit), the server's CPU per spawn; and the rollout simulation: 60 s
tasks that checkpoint every second, a rollout (SIGTERM, 5 s shutdown timeout, a new process on the
same sqlite file), the work redone per task with and without checkpoints.
`bench/run.sh --only commands [--quick]`."""
import json
import os
import signal
import stat
import subprocess
import tempfile
import threading
import time
import http.client

from common import ROOT, cpu_seconds, log, opts
from harness import Server

WORKERS = 8
SPAWN_LOOP = os.path.join(opts.build, "bench", "quiesce-spawn-loop")
PYTHON = "/usr/bin/python3"

# One step a second (or `step` s), a checkpoint after each; each step it does is appended to a
# file of its task's own, so that steps done twice can be counted. `resume` false: it ignores its
# checkpoint, as a queue without checkpoints would make it.
STEPPER = """#!/usr/bin/python3
import json, os, sys, time
job = json.load(sys.stdin)
p = job['params']
ch = os.fdopen(3, 'w', buffering=1)
start = (job['checkpoint'] or {}).get('done', 0) if p['resume'] else 0
with open(os.path.join(p['dir'], job['task_id']), 'a', buffering=1) as done:
    for i in range(start, p['steps']):
        time.sleep(p['step'])
        done.write(f'{i}\\n')
        ch.write(json.dumps({'checkpoint': {'done': i + 1}}) + '\\n')
"""


def kinds(work):
    stepper = os.path.join(work, "stepper")
    with open(stepper, "w") as f:
        f.write(STEPPER)
    os.chmod(stepper, stat.S_IRWXU)
    path = os.path.join(work, "kinds.json")
    with open(path, "w") as f:
        json.dump({"kinds": {"true": {"command": ["/bin/true"]},
                             "python": {"command": [PYTHON, "-c", "pass"]},
                             "stepper": {"command": [stepper], "kill_grace_seconds": 1}}}, f)
    return path


def post_many(server, body, n):
    """n POSTs on 8 keep-alive connections; the task ids."""
    ids, lock = [], threading.Lock()

    def poster(count):
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        for _ in range(count):
            c.request("POST", "/v1/tasks", json.dumps(body), {"Content-Type": "application/json"})
            r = c.getresponse()
            tid = json.loads(r.read())["task_id"]
            with lock:
                ids.append(tid)
        c.close()

    threads = [threading.Thread(target=poster, args=(n // 8,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids


def wait_done(server, n, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = server.request("GET", "/metrics", admin=True).raw
        done = sum(float(l.split()[-1]) for l in st.splitlines()
                   if l.startswith("quiesce_tasks_total") and 'status="succeeded"' in l)
        if done >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{n} tasks not done in {timeout} s")


def spawn_rate(kind, program, n, work):
    limit = json.loads(subprocess.run([SPAWN_LOOP, str(n), str(WORKERS), *program],
                                      capture_output=True, text=True, check=True).stdout)
    s = Server("--store", "memory", "--kinds", kinds(work), "--workers", WORKERS,
               "--queue-capacity", n * 2, "--log-level", "warn")
    try:
        cpu0 = cpu_seconds(s.proc.pid)
        start = time.monotonic()
        post_many(s, {"kind": kind, "params": {}}, n)
        wait_done(s, n, 120)
        seconds = time.monotonic() - start
        cpu = cpu_seconds(s.proc.pid) - cpu0
    finally:
        s.close()
    return {"tasks": n, "per_second": n / seconds, "bare_loop_per_second": limit["per_second"],
            "ratio_to_bare_loop": n / seconds / limit["per_second"],
            "server_cpu_ms_per_task": cpu * 1000 / n}


def rollout(resume, work, tasks=4, steps=60, step=1.0, sigterm_at=20, shutdown_timeout=5):
    """Steps done more than once per task: one rollout in the middle of the tasks."""
    done_dir = tempfile.mkdtemp(prefix="steps-", dir=work)
    data = tempfile.mkdtemp(prefix="data-", dir=work)
    args = ("--kinds", kinds(work), "--data-dir", data, "--shutdown-timeout", shutdown_timeout,
            "--log-level", "warn")
    first = Server(*args)
    body = {"kind": "stepper", "params": {"resume": resume, "dir": done_dir, "steps": steps,
                                          "step": step}}
    ids = [first.request("POST", "/v1/tasks", body).json["task_id"] for _ in range(tasks)]
    time.sleep(sigterm_at)
    first.signal(signal.SIGTERM)
    first.wait(shutdown_timeout + 30)
    first.close()
    second = Server(*args)
    try:
        for t in ids:
            deadline = time.monotonic() + steps * step * 2
            while second.request("GET", f"/v1/tasks/{t}").json["status"] != "succeeded":
                assert time.monotonic() < deadline, t
                time.sleep(0.2)
    finally:
        second.close()
    redone = []
    for t in ids:
        with open(os.path.join(done_dir, t)) as f:
            redone.append(len(f.read().split()) - steps)
    return {"tasks": tasks, "steps": steps, "step_seconds": step, "sigterm_at_s": sigterm_at,
            "shutdown_timeout_s": shutdown_timeout, "redone_steps_per_task": redone,
            "redone_seconds_per_task_max": max(redone) * step}


def bench_commands():
    work = tempfile.mkdtemp(prefix="quiesce-bench-commands-")
    n = 400 if opts.quick else 2000
    r = {"workers": WORKERS,
         "true": spawn_rate("true", ["/bin/true"], n, work),
         "python": spawn_rate("python", [PYTHON, "-c", "pass"], n // 10, work)}
    log("commands: spawn rates measured; rollout simulations take about 3 minutes")
    scale = 0.25 if opts.quick else 1.0  # --quick: the same rollout, four times faster
    sim = dict(step=1.0 * scale, sigterm_at=20 * scale, shutdown_timeout=5 * scale)
    r["rollout_with_checkpoints"] = rollout(True, work, **sim)
    r["rollout_without_checkpoints"] = rollout(False, work, **sim)
    return r


def print_commands(r):
    print(f"| command tasks, {r['workers']} workers, memory store | tasks/s | bare posix_spawn loop | ratio | server CPU per task |")
    print("|---|---|---|---|---|")
    for k, name in (("true", "`/bin/true`"), ("python", "`python3 -c pass`")):
        x = r[k]
        print(f"| {name} | {x['per_second']:,.0f} | {x['bare_loop_per_second']:,.0f} | "
              f"{x['ratio_to_bare_loop']:.2f} | {x['server_cpu_ms_per_task']:.2f} ms |")
    print()
    print("| rollout: 60 steps, a checkpoint per step, SIGTERM mid-task, deadline, a new process | steps redone per task |")
    print("|---|---|")
    for k, name in (("rollout_with_checkpoints", "with checkpoints"),
                    ("rollout_without_checkpoints", "without (each attempt starts from zero)")):
        print(f"| {name} | {r[k]['redone_steps_per_task']} |")
