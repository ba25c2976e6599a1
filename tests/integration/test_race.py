"""Clients POST as fast as they can across the SIGTERM: every 2xx task is announced succeeded,
every other answer is a 503 or a refused/closed connection, and nothing is lost."""
import asyncio
import http.client
import json
import signal
import threading
import time
import unittest

import websockets

from harness import Server, read_to_close, scaled

ROUNDS = 20
CLIENTS = 4


def hammer(port, stop, accepted, other):
    """POSTs on keep-alive connections until stopped; records what each answer was."""
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=scaled(5))
            conn.request("POST", "/v1/tasks", body='{"kind":"sleep","seconds":0.05}',
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            body = r.read()
            if r.status == 202:
                accepted.append(json.loads(body)["task_id"])
            else:
                other.append(r.status)
            if r.getheader("Connection") == "close":
                conn.close()
                conn = None
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            other.append(type(e).__name__)
            conn = None
            time.sleep(0.001)


class Race(unittest.IsolatedAsyncioTestCase):
    async def test_posts_racing_the_signal_lose_no_task(self):
        totals = {"accepted": 0, "refused_or_503": 0}
        for round_ in range(ROUNDS):
            s = Server("--workers", "8", "--queue-capacity", "100000", "--close-spread", "0")
            try:
                ws = await websockets.connect(s.ws_url(f"/ws/round{round_}"), max_queue=None)
                await ws.recv()
                stop = threading.Event()
                accepted, other = [], []
                threads = [threading.Thread(target=hammer, args=(s.port, stop, accepted, other))
                           for _ in range(CLIENTS)]
                for t in threads:
                    t.start()
                await asyncio.sleep(0.05 + 0.01 * (round_ % 5))
                s.signal(signal.SIGTERM)
                await asyncio.sleep(0.1)
                stop.set()
                await asyncio.to_thread(lambda: [t.join() for t in threads])
                frames, code = await read_to_close(ws, scaled(30))
                self.assertEqual(code, 1012)
                self.assertEqual(s.wait(scaled(10)), 0)
                succeeded = {f["task_id"] for f in frames if f.get("type") == "task" and f["status"] == "succeeded"}
                lost = set(accepted) - succeeded
                self.assertFalse(lost, f"round {round_}: {len(lost)} accepted tasks never announced")
                unexpected = [o for o in other if o not in (503, "ConnectionRefusedError", "ConnectionResetError",
                                                             "RemoteDisconnected", "BrokenPipeError")]
                self.assertFalse(unexpected, f"round {round_}: unexpected answers {set(unexpected)}")
                self.assertTrue(accepted, "some tasks were accepted before the signal")
                totals["accepted"] += len(accepted)
                totals["refused_or_503"] += len(other)
            finally:
                s.close()
        print(f"\nrace: {ROUNDS} rounds, {totals['accepted']} tasks accepted, 0 lost, "
              f"{totals['refused_or_503']} refused/503 answers")


if __name__ == "__main__":
    unittest.main()
