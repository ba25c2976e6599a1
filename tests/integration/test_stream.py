"""The WebSocket stream (docs/api.md, "The event stream"), with Debian's python3-websockets as the client."""
import asyncio
import json
import re
import socket
import time
import unittest

import websockets

from harness import Server, collect_until, read_to_close, scaled, send


def post(s, **body):
    r = s.request("POST", "/v1/tasks", body or None)
    assert r.status == 202, r.raw
    return r.json["task_id"]


def finished(tid):
    return lambda f: f.get("type") == "task" and f["task_id"] == tid and f["status"] == "succeeded"


async def until_published(s, seq):
    """Until the server has numbered `seq` events (its /v1/status says so)."""
    deadline = time.monotonic() + scaled(5)
    while s.request("GET", "/v1/status", admin=True).json["last_seq"] < seq:
        assert time.monotonic() < deadline, f"fewer than {seq} events published"
        await asyncio.sleep(0.02)


class Stream(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.s = Server("--task-seconds", "0.1", "--workers", "4",
                        env={"KUBE_POD_NAME": "pod-a", "KUBE_POD_NAMESPACE": "ns-a"})

    def tearDown(self):
        self.s.close()

    async def test_hello_then_every_transition_in_order_with_increasing_seq(self):
        async with websockets.connect(self.s.ws_url("/ws/alice")) as ws:
            hello = json.loads(await ws.recv())
            self.assertEqual(hello["type"], "hello")
            self.assertEqual(hello["client_id"], "alice")
            self.assertEqual((hello["pod"], hello["namespace"]), ("pod-a", "ns-a"))
            self.assertTrue(hello["epoch"])
            ids = [post(self.s, kind="sleep", seconds=0.05) for _ in range(3)]
            frames = await collect_until(ws, finished(ids[-1]), scaled(10))
            frames += [json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))
                       for _ in range(sum(1 for i in ids[:-1] if not any(finished(i)(f) for f in frames)))]
            seqs = [f["seq"] for f in frames]
            self.assertEqual(seqs, sorted(set(seqs)), "seq strictly increasing")
            self.assertGreater(seqs[0], hello["seq"])
            for tid in ids:
                statuses = [f["status"] for f in frames if f["task_id"] == tid]
                self.assertEqual(statuses[0], "queued")
                self.assertEqual(statuses[-1], "succeeded")
                self.assertIn("running", statuses)

    async def test_native_events_route_generates_a_client_id(self):
        async with websockets.connect(self.s.ws_url("/v1/events")) as ws:
            hello = json.loads(await ws.recv())
            self.assertEqual(len(hello["client_id"]), 36)

    async def test_subscribe_narrows_the_stream_to_named_tasks(self):
        async with websockets.connect(self.s.ws_url("/ws/bob")) as ws:
            await ws.recv()  # hello
            a = post(self.s, kind="sleep", seconds=0.3)  # its queued event arrives before the filter
            await ws.send(json.dumps({"type": "subscribe", "tasks": [a]}))
            frames = await collect_until(ws, lambda f: f["type"] == "subscribed", scaled(5))
            b = post(self.s, kind="sleep", seconds=0.05)
            frames = await collect_until(ws, finished(a), scaled(10))
            self.assertTrue(all(f["task_id"] == a for f in frames), frames)
            self.assertNotIn(b, {f["task_id"] for f in frames})
            await ws.send(json.dumps({"type": "subscribe", "all": True}))
            await collect_until(ws, lambda f: f["type"] == "subscribed" and f.get("all"), scaled(5))
            c = post(self.s, kind="sleep", seconds=0.05)
            await collect_until(ws, finished(c), scaled(10))

    async def test_bad_client_message_gets_an_error_frame_and_the_stream_stays(self):
        async with websockets.connect(self.s.ws_url("/ws/carol")) as ws:
            await ws.recv()
            await ws.send("not json")
            err = json.loads(await ws.recv())
            self.assertEqual((err["type"], err["error"]), ("error", "bad_message"))
            tid = post(self.s)
            await collect_until(ws, finished(tid), scaled(10))

    async def test_a_fragmented_message_a_ping_and_a_close_from_the_client_are_answered(self):
        async with websockets.connect(self.s.ws_url("/ws/erin")) as ws:
            await ws.recv()  # hello
            await ws.send(['{"type":"subscribe",', '"all":true}'])  # one message in two frames
            ack = json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))
            self.assertEqual(ack, {"type": "subscribed", "all": True})
            await asyncio.wait_for(await ws.ping(b"are you there"), scaled(5))  # its pong came
            await asyncio.wait_for(ws.close(1000, "bye"), scaled(5))
            self.assertEqual(ws.close_code, 1000)  # the server answered with the same code

    async def test_since_replays_missed_events_before_live_ones(self):
        async with websockets.connect(self.s.ws_url("/ws/dave")) as ws:
            epoch = json.loads(await ws.recv())["epoch"]
            first = post(self.s, kind="sleep", seconds=0)
            seen = await collect_until(ws, finished(first), scaled(10))
        last_seen = seen[-1]["seq"]
        missed = post(self.s, kind="sleep", seconds=0)  # while disconnected
        self.s.request("GET", f"/v1/tasks/{missed}")
        deadline = time.monotonic() + scaled(5)
        while self.s.request("GET", f"/v1/tasks/{missed}").json["status"] != "succeeded":
            self.assertLess(time.monotonic(), deadline)
            await asyncio.sleep(0.02)
        async with websockets.connect(self.s.ws_url(f"/ws/dave?since={last_seen}&epoch={epoch}")) as ws:
            hello = json.loads(await ws.recv())
            replay = await collect_until(ws, finished(missed), scaled(5))
            self.assertNotIn("gap", [f["type"] for f in replay])
            self.assertEqual(replay[0]["seq"], last_seen + 1)
            self.assertLessEqual(replay[-1]["seq"], hello["seq"])
            self.assertEqual([f["status"] for f in replay if f["task_id"] == missed][0], "queued")


class Retention(unittest.IsolatedAsyncioTestCase):
    async def test_gap_when_asked_events_left_the_window_and_foreign_epoch_gets_the_window(self):
        s = Server("--event-retention", "5", "--workers", "2")
        try:
            for _ in range(4):  # 3 events each at least: more than the window
                post(s, kind="sleep", seconds=0)
            await until_published(s, 12)
            async with websockets.connect(s.ws_url("/ws/erin?since=1")) as ws:
                hello = json.loads(await ws.recv())
                gap = json.loads(await ws.recv())
                self.assertEqual(gap["type"], "gap")
                replay = [json.loads(await ws.recv()) for _ in range(5)]
                self.assertEqual(replay[-1]["seq"], hello["seq"])
            async with websockets.connect(s.ws_url("/ws/erin?since=3&epoch=some-other-pod")) as ws:
                await ws.recv()
                self.assertEqual(json.loads(await ws.recv())["type"], "gap")
                replay = [json.loads(await ws.recv()) for _ in range(5)]
                self.assertEqual([f["type"] for f in replay], ["task"] * 5)
            r = s.request("GET", "/ws/erin?since=abc", headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
            self.assertEqual(r.status, 400)
        finally:
            s.close()


    async def test_a_replay_longer_than_the_send_queue_is_delivered_whole(self):
        # A client moved from a draining pod replays the new pod's whole window: the send-queue
        # limit is for live events it falls behind on, not for the replay it asked for.
        s = Server("--ws-send-queue", "16", "--workers", "4")
        try:
            ids = [post(s, kind="sleep", seconds=0) for _ in range(20)]
            await until_published(s, 60)
            async with websockets.connect(s.ws_url("/ws/moved?since=7&epoch=old-pod")) as ws:
                hello = json.loads(await ws.recv())
                frames = [json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))
                          for _ in range(hello["seq"])]
            self.assertEqual([f["seq"] for f in frames], list(range(1, hello["seq"] + 1)))
            done = {f["task_id"] for f in frames if f["status"] == "succeeded"}
            self.assertEqual(done, set(ids))
        finally:
            s.close()


class DeadPeer(unittest.TestCase):
    def test_a_peer_that_stops_answering_pings_is_dropped(self):
        s = Server("--ws-ping-interval", str(scaled(0.2)))
        try:
            dead = socket.create_connection(("127.0.0.1", s.port))
            dead.sendall(b"GET /ws/ghost HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            # The hello frame is queued only once the stream is registered: wait for it, not 101.
            dead.settimeout(scaled(5))
            got = b""
            while b'"hello"' not in got:
                chunk = dead.recv(4096)
                self.assertTrue(chunk, "server closed before hello")
                got += chunk
            self.assertIn(b" 101 ", got)
            self.assertEqual(s.request("GET", "/v1/status", admin=True).json["websockets"], 1)
            # It reads but never answers a ping: the server hangs up by itself after two intervals.
            opened = time.monotonic()
            try:
                while dead.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            self.assertGreaterEqual(time.monotonic() - opened, 0.2)
            deadline = time.monotonic() + scaled(3)
            while s.request("GET", "/v1/status", admin=True).json["websockets"] != 0:
                self.assertLess(time.monotonic(), deadline, "dead peer still counted as open")
                time.sleep(0.05)
            dead.close()
        finally:
            s.close()


class SlowConsumer(unittest.IsolatedAsyncioTestCase):
    async def test_client_that_cannot_keep_up_is_closed_1013_not_skipped(self):
        s = Server("--ws-send-queue", "64", "--ws-send-buffer", "8192", "--workers", "8",
                   "--queue-capacity", "5000")
        try:
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # fills after a few frames
            raw.connect(("127.0.0.1", s.port))
            # Small buffers everywhere: the client library stops reading once one frame waits.
            ws = await websockets.connect(s.ws_url("/ws/slow"), sock=raw, max_queue=1, read_limit=1024)
            await ws.recv()  # hello; then stop reading
            fast = await websockets.connect(s.ws_url("/ws/fast"))
            await fast.recv()
            fast_frames = []

            async def keep_up():
                async for m in fast:
                    fast_frames.append(json.loads(m))
            reader = asyncio.create_task(keep_up())

            def flood(n):
                conn = s.connection()
                ids = [send(conn, "POST", "/v1/tasks", {"kind": "sleep", "seconds": 0}).json["task_id"]
                       for _ in range(n)]
                conn.close()
                return ids

            # In rounds of 50 tasks, each once the fast client has seen the last one succeed: it
            # never lags by more than its buffers hold, even on a loaded machine, while the slow
            # client (which reads nothing) falls ever further behind.
            for _ in range(12):
                last = (await asyncio.to_thread(flood, 50))[-1]
                deadline = time.monotonic() + scaled(10)
                while not any(f.get("task_id") == last and f.get("status") == "succeeded"
                              for f in fast_frames):
                    self.assertLess(time.monotonic(), deadline, "the fast client fell behind")
                    await asyncio.sleep(0.01)
            deadline = time.monotonic() + scaled(20)
            while not re.search(r"^quiesce_websockets_dropped_slow_total 1$",
                                m := s.request("GET", "/metrics", admin=True).raw, re.M):
                self.assertLess(time.monotonic(), deadline, "slow client not dropped once:\n" + m)
                await asyncio.sleep(0.05)
            frames, code = await read_to_close(ws, scaled(10))
            self.assertEqual(code, 1013)
            seqs = [f["seq"] for f in frames if f.get("type") == "task"]
            self.assertEqual(seqs, sorted(seqs))
            # The client that keeps up is not affected: it got every event.
            deadline = time.monotonic() + scaled(10)
            while len([f for f in fast_frames if f["type"] == "task"]) < 1800:
                self.assertLess(time.monotonic(), deadline, f"fast client got {len(fast_frames)}")
                await asyncio.sleep(0.05)
            self.assertTrue(fast.open)
            await fast.close()
            await reader
        finally:
            s.close()

    async def pause_while_tasks_run(self, tasks, *args):
        """A client with small buffers stops reading while `tasks` zero-second tasks are run and
        announced, then reads on: returns the seqs it got, the seqs there were, and its close code
        (None: still open)."""
        s = Server("--ws-send-buffer", "8192", "--workers", "8", *args)
        try:
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            raw.connect(("127.0.0.1", s.port))
            ws = await websockets.connect(s.ws_url("/ws/paused"), sock=raw, max_queue=1,
                                          read_limit=1024)
            hello = json.loads(await ws.recv())
            conn = s.connection()
            for _ in range(tasks):
                self.assertEqual(send(conn, "POST", "/v1/tasks", {"kind": "sleep", "seconds": 0}).status, 202)
            conn.close()
            await until_published(s, hello["seq"] + 3 * tasks)  # queued, running, succeeded each
            frames = []
            try:
                while len(frames) < 3 * tasks:
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), scaled(10))))
            except websockets.ConnectionClosed:
                pass
            published = list(range(hello["seq"] + 1, hello["seq"] + 1 + 3 * tasks))
            code = ws.close_code
            await ws.close()
            return [f["seq"] for f in frames], published, code
        finally:
            s.close()

    async def test_a_paused_client_keeps_up_to_the_byte_limit_and_is_closed_1013_past_it(self):
        # 200 tasks are 600 frames of ~200 bytes: past the old 256-frame limit, well inside the
        # default 1 MiB. A reader that pauses for that long (a GC, a busy event loop) is not slow.
        got, published, code = await self.pause_while_tasks_run(200)
        self.assertIsNone(code)
        self.assertEqual(got, published)
        # The same pause past a limit: closed 1013 after what it was sent, never skipped.
        for limit in (["--ws-send-queue", "256"], ["--ws-send-queue-bytes", "16384"]):
            got, published, code = await self.pause_while_tasks_run(200, *limit)
            self.assertEqual(code, 1013, limit)
            self.assertLess(len(got), len(published), limit)
            self.assertEqual(got, published[:len(got)], limit)


if __name__ == "__main__":
    unittest.main()
