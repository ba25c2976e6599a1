"""A POST flood across a SIGTERM with one watcher in its own process (Debian's python3-websockets,
reading as fast as it can): is the watcher told every outcome, or closed 1013 by the server's own
bursts? During the drain it cannot come back (the listener is closed), so a 1013 here loses the
outcomes it had not been sent. Each round runs every send limit once, alternating."""
import json
import signal
import subprocess
import time

from common import ROOT, log, opts, quiesce

WATCHER = r'''
import asyncio, json, sys, websockets
async def main(url):
    ws = await websockets.connect(url, max_queue=None)
    print("ready", flush=True)
    frames, done = 0, set()
    try:
        async for m in ws:
            frames += 1
            f = json.loads(m)
            if f.get("type") == "task" and f["status"] == "succeeded":
                done.add(f["task_id"])
    except websockets.ConnectionClosed:
        pass
    print(json.dumps({"code": ws.close_code, "frames": frames, "succeeded": len(done)}), flush=True)
asyncio.run(main(sys.argv[1]))
'''

LIMITS = {"256 frames (the old default)": {"ws_send_queue": 256, "ws_send_queue_bytes": 10 ** 12},
          "defaults (1 MiB)": {}}


def one_round(knobs):
    # The bench's server, but with the default store (sqlite, whose group commits make the
    # bursts), 8 workers and 10 ms tasks: the scenario. A second of the flood is 20,000
    # and more tasks, over 25 s of the workers' time: the deadline is longer here, so that every
    # accepted task ends and is announced (exit code 0).
    s = quiesce(store="sqlite", workers=8, close_spread=0, shutdown_timeout=120, **knobs)
    try:
        w = subprocess.Popen(["/usr/bin/python3", "-c", WATCHER, s.ws_url("/ws/watcher")],
                             stdout=subprocess.PIPE, text=True)
        w.stdout.readline()
        posters = subprocess.Popen(["wrk", "-t2", "-c32", "-d30s", "-s",
                                    f"{ROOT}/bench/post_10ms_task.lua",
                                    f"http://127.0.0.1:{s.port}/v1/tasks"],
                                   stdout=subprocess.DEVNULL)
        time.sleep(1.0)
        s.signal(signal.SIGTERM)
        seen = json.loads(w.stdout.readline())
        w.wait()
        posters.kill()
        posters.wait()
        seen["exit_code"] = s.wait(180)
        return seen
    finally:
        s.close()


def bench_flood():
    rounds = 5 if opts.quick else 10
    runs = {name: [] for name in LIMITS}
    for i in range(rounds):
        for name, knobs in LIMITS.items():
            r = one_round(knobs)
            log(f"flood round {i}, {name}: {r}")
            runs[name].append(r)
    return {"rounds": rounds, "runs": runs}


def print_flood(r):
    print("| send limit | rounds the watcher was closed 1013 | frames it got, median | drained (exit 0) |")
    print("|---|---|---|---|")
    for name, runs in r["runs"].items():
        cut = sum(x["code"] == 1013 for x in runs)
        frames = sorted(x["frames"] for x in runs)[len(runs) // 2]
        drained = sum(x.get("exit_code") == 0 for x in runs)
        print(f"| {name} | {cut} of {r['rounds']} | {frames:,} | {drained} of {r['rounds']} |")
