"""Time from SIGTERM to exit with 20 tasks queued behind 4 workers, and from the last task's end
to exit (the drain's own overhead)."""
import calendar
import signal
import sys
import time

sys.path.insert(0, sys.argv[1])
from harness import Server  # noqa: E402


def ms(ts):
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(ts[20:23])


runs = []
for _ in range(5):
    s = Server("--workers", "4", "--close-spread", "0")
    try:
        for _ in range(24):  # 4 start at once, 20 wait in the queue
            assert s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0.2}).status == 202
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        rc = s.wait(30)
        total = time.monotonic() - t0
        logs = s.logs()
        finished = next(l for l in logs if l["msg"] == "tasks finished")
        stopped = next(l for l in logs if l["msg"] == "stopped")
        runs.append((total, ms(stopped["ts"]) - ms(finished["ts"]), rc))
    finally:
        s.close()
best = min(runs)
print("drain_time: 24 tasks of 0.2 s on 4 workers (20 queued at SIGTERM); "
      f"SIGTERM->exit median {sorted(r[0] for r in runs)[2]*1000:.0f} ms (work alone: 1200 ms), "
      f"last task->exit median {sorted(r[1] for r in runs)[2]} ms, exit codes {sorted(set(r[2] for r in runs))}")
