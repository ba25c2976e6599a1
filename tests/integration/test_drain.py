"""The drain (README, "The drain") on the real binary: signals in, close codes and exit codes out."""
import asyncio
import errno
import json
import signal
import socket
import threading
import time
import unittest

import websockets

from harness import Server, read_to_close, scaled, send


def post(s, conn=None, **body):
    r = send(conn, "POST", "/v1/tasks", body) if conn else s.request("POST", "/v1/tasks", body)
    assert r.status == 202, r.raw
    return r.json["task_id"]


def connect_refused(port):
    """True if a TCP connect to the public port is refused."""
    with socket.socket() as c:
        c.settimeout(1)
        return c.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED


class GracefulDrain(unittest.IsolatedAsyncioTestCase):
    async def test_sigterm_with_running_and_queued_tasks_loses_nothing(self):
        # 2 workers, 4 tasks: two run and two wait in the queue at the signal.
        s = Server("--workers", "2", "--close-spread", "0", "--shutdown-timeout", "20")
        try:
            clients = [await websockets.connect(s.ws_url(f"/ws/c{i}")) for i in range(3)]
            for c in clients:
                await c.recv()
            keep_alive = s.connection()
            send(keep_alive, "GET", "/v1/health")  # open keep-alive connections from before
            upgrade_later = s.connection()
            send(upgrade_later, "GET", "/v1/health")
            original = s.connection()
            send(original, "GET", "/v1/health")
            ids = [post(s, kind="sleep", seconds=0.8) for _ in range(4)]
            st = s.request("GET", "/v1/status", admin=True).json
            self.assertEqual((st["running"], st["queued"]), (2, 2))

            s.signal(signal.SIGTERM)
            t0 = time.monotonic()
            # New connects are refused at once.
            while not connect_refused(s.port):
                self.assertLess(time.monotonic() - t0, scaled(0.1), "public port still accepting")
                await asyncio.sleep(0.002)
            # Probes: not ready, but alive; status says draining.
            self.assertEqual(s.request("GET", "/readyz", admin=True).status, 503)
            self.assertEqual(s.request("GET", "/healthz", admin=True).status, 200)
            self.assertEqual(s.request("GET", "/v1/status", admin=True).json["phase"], "draining")
            # New work on an already-open connection: 503, Retry-After, Connection: close.
            r = send(keep_alive, "POST", "/v1/tasks", {"kind": "sleep", "seconds": 0.1})
            self.assertEqual(r.status, 503)
            self.assertTrue(r.header("Retry-After"))
            self.assertEqual(r.header("Connection"), "close")
            self.assertEqual(r.json["error"], "draining")
            # The original's routes answer as the original did.
            r = send(original, "POST", "/v1/create-task/")
            self.assertEqual((r.status, r.json["detail"]), (503, "Service Under Graceful Shutdown"))
            # So does a WebSocket upgrade.
            r = send(upgrade_later, "GET", "/ws/late", headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
            self.assertEqual((r.status, r.json["error"]), (503, "draining"))
            self.assertTrue(r.header("Retry-After"))

            results = await asyncio.gather(*(read_to_close(c, scaled(15)) for c in clients))
            for frames, code in results:
                self.assertEqual(code, 1012)
                self.assertEqual(frames[-1]["type"], "draining")
                self.assertIn("reconnect_after_ms", frames[-1])
                done = {f["task_id"] for f in frames if f.get("type") == "task" and f["status"] == "succeeded"}
                self.assertEqual(done, set(ids), "every accepted task announced before draining")
            rc = s.wait(scaled(10))
            self.assertEqual(rc, 0)
            logs = s.logs()
            last_task_end = max(
                _ms(f["finished_at"]) for f in results[0][0] if f.get("type") == "task" and f["status"] == "succeeded")
            stopped = next(l for l in logs if l["msg"] == "stopped")
            self.assertLess(_ms(stopped["ts"]) - last_task_end, scaled(1000), "exit within 1 s of the last task")
            phases = [l["msg"] for l in logs if l["msg"] in ("drain started", "listeners closed", "tasks finished", "streams closed", "stopped")]
            self.assertEqual(phases, ["drain started", "listeners closed", "tasks finished", "streams closed", "stopped"])
            for l in logs:
                self.assertIn("ts", l)
        finally:
            s.close()

    async def test_drain_with_nothing_to_do_exits_at_once(self):
        s = Server()
        try:
            t0 = time.monotonic()
            s.signal(signal.SIGINT)
            self.assertEqual(s.wait(scaled(5)), 0)
            self.assertLess(time.monotonic() - t0, scaled(1))
        finally:
            s.close()


class ConnectStorm(unittest.TestCase):
    def test_connections_arriving_as_the_listener_closes_do_not_stall_the_exit(self):
        # Found by the bench: a connection accepted in the last instant was handed to network
        # threads that had already run dry, the end of the drain waited out its close timeout,
        # and the process then crashed tearing down the coroutine it never ran.
        for _ in range(5):
            s = Server("--close-timeout", "2")
            stop = threading.Event()

            def storm():
                while not stop.is_set():
                    try:
                        socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
                    except OSError:
                        return  # refused: the listener is closed

            t = threading.Thread(target=storm)
            try:
                t.start()
                time.sleep(0.05)
                s.signal(signal.SIGTERM)
                self.assertEqual(s.wait(scaled(10)), 0)
                stopped = s.wait_log(lambda l: l.get("msg") == "stopped", scaled(1))
                self.assertLess(stopped["since_signal_ms"], 2000, "the end waited out the close timeout")
            finally:
                stop.set()
                t.join()
                s.close()


class DrainDelay(unittest.TestCase):
    def test_drain_delay_keeps_the_listener_open_then_closes_it(self):
        s = Server("--drain-delay", str(scaled(0.5)), "--close-spread", "0")
        try:
            s.signal(signal.SIGTERM)
            s.wait_log(lambda l: l.get("msg") == "drain started", scaled(5))
            r = s.request("GET", "/v1/health")  # a fresh connection is still served
            self.assertEqual((r.status, r.json), (503, {"status": "Service Under Graceful Shutdown"}))
            self.assertEqual(r.header("Connection"), "close")
            s.wait_log(lambda l: l.get("msg") == "listeners closed", scaled(5))
            self.assertTrue(connect_refused(s.port))
            self.assertEqual(s.wait(scaled(5)), 0)
        finally:
            s.close()


class ForcedDrain(unittest.IsolatedAsyncioTestCase):
    # With the memory store; the sqlite store requeues instead (test_durable.py).
    async def test_task_longer_than_the_shutdown_timeout_ends_interrupted_and_clients_are_told(self):
        s = Server("--store", "memory", "--workers", "1", "--shutdown-timeout", str(scaled(0.5)),
                   "--close-spread", "0", "--max-task-seconds", "60")
        try:
            ws = await websockets.connect(s.ws_url("/ws/watcher"))
            await ws.recv()
            long_task = post(s, kind="sleep", seconds=30)
            never_started = post(s, kind="sleep", seconds=30)
            s.signal(signal.SIGTERM)
            frames, code = await read_to_close(ws, scaled(10))
            self.assertEqual(code, 1012)
            final = {f["task_id"]: f["status"] for f in frames if f.get("type") == "task"}
            self.assertEqual(final[long_task], "interrupted")
            self.assertEqual(final[never_started], "interrupted")
            self.assertEqual(frames[-1]["type"], "draining")
            rc = s.wait(scaled(5))
            self.assertNotEqual(rc, 0)
            self.assertTrue(any(l["msg"] == "drain forced" and l["reason"] == "shutdown timeout" for l in s.logs()))
        finally:
            s.close()

    async def test_the_deadline_burst_still_ends_every_stream_with_draining_and_1012(self):
        # At the deadline every queued task ends at once: 900 `interrupted` events reach each of
        # 100 clients in one burst, more than a send queue holds (256 frames). The server made that burst,
        # not a slow client, so it must not close anybody 1013 (the listener is closed: a client
        # cut now cannot come back to learn those outcomes).
        s = Server("--store", "memory", "--workers", "1", "--shutdown-timeout", str(scaled(0.5)),
                   "--close-spread", "0", "--max-task-seconds", "60", "--ws-send-queue", "256",
                   "--close-timeout", str(scaled(15)))  # this reader takes seconds for 90,000 frames
        try:
            conn = s.connection()
            ids = {post(s, conn, kind="sleep", seconds=30) for _ in range(900)}
            watchers = [await websockets.connect(s.ws_url(f"/ws/burst{i}")) for i in range(100)]
            for ws in watchers:
                await ws.recv()
            s.signal(signal.SIGTERM)
            results = await asyncio.gather(*(read_to_close(ws, scaled(30)) for ws in watchers))
            for frames, code in results:
                self.assertEqual(code, 1012)
                self.assertEqual(frames[-1]["type"], "draining")
                ended = {f["task_id"] for f in frames
                         if f.get("type") == "task" and f["status"] == "interrupted"}
                self.assertEqual(ended, ids)
            self.assertNotEqual(s.wait(scaled(5)), 0)
            self.assertFalse(any(l["msg"] == "slow stream closed" for l in s.logs()))
        finally:
            s.close()

    async def test_second_signal_forces_the_stop_at_once(self):
        s = Server("--store", "memory", "--workers", "1", "--shutdown-timeout", "25", "--close-spread", "0")
        try:
            ws = await websockets.connect(s.ws_url("/ws/w"))
            await ws.recv()
            tid = post(s, kind="sleep", seconds=20)
            s.signal(signal.SIGTERM)
            s.wait_log(lambda l: l.get("msg") == "drain started", scaled(5))
            t0 = time.monotonic()
            s.signal(signal.SIGTERM)
            frames, code = await read_to_close(ws, scaled(10))
            rc = s.wait(scaled(5))
            self.assertLess(time.monotonic() - t0, scaled(1.5))
            self.assertEqual(code, 1012)
            self.assertNotEqual(rc, 0)
            self.assertIn(("interrupted"), [f["status"] for f in frames if f.get("task_id") == tid])
        finally:
            s.close()


def _ms(ts):
    """Milliseconds of an RFC 3339 UTC log timestamp."""
    import calendar
    base = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    return base * 1000 + int(ts[20:23])


if __name__ == "__main__":
    unittest.main()
