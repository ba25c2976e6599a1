#!/usr/bin/python3
"""Soak: mixed HTTP + WebSocket load on the release build for --minutes, with a SIGTERM and a
restart on the same port every --cycle seconds. Samples the server's RSS, open descriptors and
task counts every 5 s, and counts tasks lost: a 2xx task its process never logged as ended.
Prints one line per sample and a JSON summary at the end. Not part of CI (bench/README.md).

    bench/soak.py [--minutes 10] [--cycle 60] [--rate 200] [--streams 50] [--task-retention N]
"""
import argparse
import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time

import websockets

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=os.path.join(ROOT, "build", "release", "app", "quiesce"))
ap.add_argument("--minutes", type=float, default=10)
ap.add_argument("--cycle", type=float, default=60, help="seconds between SIGTERM/restart")
ap.add_argument("--rate", type=float, default=200, help="task POSTs per second")
ap.add_argument("--streams", type=int, default=50)
ap.add_argument("--port", type=int, default=18080)
ap.add_argument("--admin-port", type=int, default=18081)
ap.add_argument("--task-retention", type=int, help="the server's --task-retention (its default if not given)")
ap.add_argument("--out", default=os.path.join(ROOT, "bench", "soak.json"))
opts = ap.parse_args()


class Pod:
    """One server process; its log tells which tasks it ended."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [opts.bin, "--port", str(opts.port), "--admin-port", str(opts.admin_port),
             "--bind", "127.0.0.1", "--log-level", "debug", "--threads", "1", "--workers", "32",
             "--close-spread", "0.2",
             *(["--task-retention", str(opts.task_retention)] if opts.task_retention else [])],
            stdout=subprocess.PIPE, text=True)
        self.ended, self.accepted = {}, set()  # task id -> final status
        for line in self.proc.stdout:
            if json.loads(line)["msg"] == "listening":
                break

    async def read_log(self):
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, self.proc.stdout.readline):
            entry = json.loads(line)
            if entry["msg"] == "task ended":
                self.ended[entry["task_id"]] = entry["status"]

    def sample(self):
        pid = self.proc.pid
        with open(f"/proc/{pid}/status") as f:
            rss_kib = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return {"rss_mib": round(rss_kib / 1024, 1), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


async def http(method, path, body=b"", port=None):
    reader, writer = await asyncio.open_connection("127.0.0.1", port or opts.port)
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body)
        data = await reader.read()
        head, _, payload = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), payload
    finally:
        writer.close()


async def poster(state):
    n = itertools.count()
    interval = 1 / opts.rate
    while not state["done"]:
        started = time.monotonic()
        pod = state["pod"]
        seconds = (next(n) % 5) / 10  # 0 to 0.4 s tasks
        try:
            code, payload = await http("POST", "/v1/tasks",
                                       json.dumps({"kind": "sleep", "seconds": seconds}).encode())
            if code == 202:
                pod.accepted.add(json.loads(payload)["task_id"])
                state["posted"] += 1
            else:
                state["refused"] += 1
        except OSError:
            state["refused"] += 1  # 429 (queue full), 503 (draining), refused (restarting)
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


async def stream(state, i):
    since, epoch = None, None
    while not state["done"]:
        url = f"ws://127.0.0.1:{opts.port}/ws/soak-{i}"
        if since is not None:
            url += f"?since={since}&epoch={epoch}"
        ws = None
        try:
            async with websockets.connect(url) as ws:
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame["type"] == "hello":
                        epoch = frame["epoch"]
                    elif "seq" in frame:
                        since = frame["seq"]
                        state["frames"] += 1
        except (OSError, websockets.WebSocketException):
            await asyncio.sleep(0.2)
        finally:
            if ws is not None and ws.close_code is not None:
                code = str(ws.close_code)
                state["closes"][code] = state["closes"].get(code, 0) + 1


async def main():
    state = {"done": False, "posted": 0, "refused": 0, "frames": 0, "closes": {}, "pod": Pod()}
    pods, samples, exits = [state["pod"]], [], []
    readers = [asyncio.create_task(state["pod"].read_log())]
    workers = [asyncio.create_task(poster(state)) for _ in range(4)]
    workers += [asyncio.create_task(stream(state, i)) for i in range(opts.streams)]
    started = cycle_started = time.monotonic()
    while time.monotonic() - started < opts.minutes * 60:
        await asyncio.sleep(5)
        pod = state["pod"]
        _, status = await http("GET", "/v1/status", port=opts.admin_port)
        s = json.loads(status)
        sample = {"t_s": round(time.monotonic() - started), "pod": len(pods), **pod.sample(),
                  "queued": s["queued"], "running": s["running"], "websockets": s["websockets"],
                  "tasks_known": len(pod.accepted), "posted_total": state["posted"]}
        samples.append(sample)
        print(json.dumps(sample), flush=True)
        if time.monotonic() - cycle_started >= opts.cycle:
            pod.proc.send_signal(signal.SIGTERM)
            code = await asyncio.get_running_loop().run_in_executor(None, pod.proc.wait)
            exits.append(code)
            state["pod"] = Pod()
            pods.append(state["pod"])
            readers.append(asyncio.create_task(state["pod"].read_log()))
            cycle_started = time.monotonic()
    state["done"] = True
    await asyncio.gather(*workers[:4])
    last = state["pod"]
    last.proc.send_signal(signal.SIGTERM)
    exits.append(await asyncio.get_running_loop().run_in_executor(None, last.proc.wait))
    for w in workers[4:]:
        w.cancel()
    await asyncio.gather(*readers)
    # By id over every pod: a POST sent as one pod stopped may have reached the next one.
    ended = {i for p in pods for i in p.ended}
    lost = len(set().union(*(p.accepted for p in pods)) - ended)
    not_succeeded = sum(1 for p in pods for status in p.ended.values() if status != "succeeded")
    summary = {"minutes": opts.minutes, "restarts": len(pods) - 1, "exit_codes": exits,
               "tasks_accepted": sum(len(p.accepted) for p in pods), "tasks_lost": lost, "tasks_not_succeeded": not_succeeded,
               "not_accepted": state["refused"], "frames": state["frames"],
               "close_codes": state["closes"], "samples": samples}
    with open(opts.out, "w") as f:
        json.dump(summary, f, indent=1)
    print("SOAK " + json.dumps({k: v for k, v in summary.items() if k != "samples"}), flush=True)
    return 0 if lost == not_succeeded == 0 and all(c == 0 for c in exits) else 1


sys.exit(asyncio.run(main()))
