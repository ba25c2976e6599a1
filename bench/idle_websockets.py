"""RSS of a quiesce process before and after N idle WebSocket clients connect."""
import asyncio
import resource
import sys

import websockets

sys.path.insert(0, sys.argv[1])
from harness import Server  # noqa: E402

N = int(sys.argv[2]) if len(sys.argv) > 2 else 1000


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


async def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, N * 2 + 100)), hard))
    s = Server()
    try:
        before = rss_kib(s.proc.pid)
        clients = []
        for i in range(N):
            ws = await websockets.connect(s.ws_url(f"/ws/idle{i}"))
            await ws.recv()
            clients.append(ws)
        await asyncio.sleep(0.5)
        after = rss_kib(s.proc.pid)
        print(f"idle_websockets: {N} clients, rss before {before} KiB, after {after} KiB, "
              f"{(after - before) / N:.1f} KiB per client")
        for ws in clients:
            await ws.close()
    finally:
        s.close()


asyncio.run(main())
