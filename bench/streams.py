"""The WebSocket figures (idle memory, one event's fan-out, frames/s), each against a server
that `start()` returns (default: quiesce with the bench's knobs): bench.py and peers.py use them."""
import subprocess
import time

from common import line, log, opts, quiesce, rising_rates, rss_kib, wsload


def bench_capacity(n, start=quiesce):
    log(f"capacity: {n} idle streams")
    s = start()
    try:
        before = rss_kib(s.proc.pid)
        w = wsload("hold", s.port, "--connections", n, stdin=subprocess.PIPE)
        opened = line(w)
        time.sleep(0.5)
        after = rss_kib(s.proc.pid)
        w.stdin.close()
        w.wait()
    finally:
        s.close()
    return {"connections": opened["opened"], "failed": opened["failed"],
            "opened_per_second": opened["per_second"], "rss_before_kib": before,
            "rss_after_kib": after, "kib_per_connection": (after - before) / opened["opened"]}


def bench_fanout(n, start=quiesce):
    log(f"fan-out: one event to {n} subscribers")
    s = start()
    try:
        w = wsload("fanout", s.port, "--connections", n, "--probes", 10 if opts.quick else 20,
                   "--server-pid", s.proc.pid)
        r = line(w)
        w.wait()
    finally:
        s.close()
    return r


def bench_rate(n, start=quiesce):
    """Frames/s to n subscribers at rising task rates; the best run in which nobody was closed."""
    def run_at(rate):
        log(f"rate: {rate} tasks/s to {n} subscribers")
        s = start()
        try:
            w = wsload("rate", s.port, "--connections", n, "--seconds", 2 if opts.quick else 5,
                       "--posters", 8, "--rate", rate, "--server-pid", s.proc.pid)
            r = line(w)
            w.wait()
        finally:
            s.close()
        return r

    runs, best = rising_rates((25, 50, 100, 200, 400), run_at)
    return {"runs": runs, "best_frames_per_second": best["frames_per_second"] if best else 0}
