"""One event stream across replicas (--store postgres): every replica's clients get every task's
events in the one order the database gives them, and a client moved to another replica resumes
with ?since= without a hole or a repeat. Clients are Debian's python3-websockets."""
import asyncio
import json
import signal
import subprocess
import threading
import time
import unittest

import websockets

from harness import collect_until, read_to_close, scaled
import postgres

PG = None


def setUpModule():
    global PG
    PG = postgres.cluster()


def tearDownModule():
    postgres.close_cluster()


def ended(ids):
    """A predicate over frames: true once each of `ids` has had a final event."""
    left = set(ids)

    def pred(f):
        if f.get("type") == "task" and f["status"] in ("succeeded", "failed", "cancelled"):
            left.discard(f["task_id"])
        return not left

    return pred


def tasks_only(frames):
    return [f for f in frames if f.get("type") == "task"]


class SharedStream(postgres.ReplicaCase):
    def stored_seqs(self, after=0):
        return [int(r[0]) for r in PG.psql(f"SELECT seq FROM quiesce_events WHERE seq > {after} ORDER BY seq",
                                           self.db)]

    def test_every_replica_streams_every_event_in_one_order(self):
        servers = self.replicas(3, "--workers", "2")

        async def scenario():
            clients = [await websockets.connect(s.ws_url("/v1/events")) for s in servers]
            hellos = [json.loads(await c.recv()) for c in clients]
            # Tasks accepted by every replica, run by whichever claims them.
            ids = [self.post(servers[i % 3], {"seconds": 0.1}) for i in range(12)]
            got = [tasks_only(await collect_until(c, ended(ids), scaled(20))) for c in clients]
            for c in clients:
                await c.close()
            return hellos, ids, got

        hellos, ids, got = asyncio.run(scenario())
        self.assertEqual(len({h["epoch"] for h in hellos}), 1, "one epoch: the database's")
        # Each client sees the same events in the same order; the shortest is a prefix of the others
        # (a client stops reading at the last final event it was waiting for).
        views = [[(f["seq"], f["task_id"], f["status"]) for f in g] for g in got]
        n = min(len(v) for v in views)
        self.assertTrue(all(v[:n] == views[0][:n] for v in views), "one order on every replica")
        for v in views:
            seqs = [s for s, _, _ in v]
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "contiguous seq")
            for i in ids:
                statuses = [st for _, t, st in v if t == i]
                self.assertEqual((statuses[0], statuses[-1]), ("queued", "succeeded"), statuses)
        # A replica logs an end after the database has it, so its clients can see it first: read
        # each replica's log once it has stopped.
        for s in servers:
            self.assertEqual(s.stop(scaled(10)), 0)
        ran_on = {l["task_id"] for s in servers for l in s.logs() if l.get("msg") == "task ended"}
        self.assertEqual(ran_on, set(ids))

    def test_a_client_moved_to_another_replica_resumes_with_no_hole_and_no_repeat(self):
        a, b = self.replicas(2, "--workers", "2")

        async def scenario():
            first = [self.post(a, {"seconds": 0.1}) for _ in range(4)]
            async with websockets.connect(a.ws_url("/v1/events?since=0")) as ws:
                hello = json.loads(await ws.recv())
                seen = tasks_only(await collect_until(ws, ended(first), scaled(20)))
            # Away from the stream (a rolling update moved it): more work, on both replicas.
            later = [self.post(s, {"seconds": 0.1}) for s in (a, b, a, b)]
            for i in later:
                self.wait_final(b, i, 20)
            last = seen[-1]["seq"]
            url = f"/v1/events?since={last}&epoch={hello['epoch']}"
            async with websockets.connect(b.ws_url(url)) as ws:
                hello_b = json.loads(await ws.recv())
                resumed = await collect_until(ws, ended(later), scaled(20))
            return hello, seen, hello_b, resumed, last

        hello, seen, hello_b, resumed, last = asyncio.run(scenario())
        self.assertEqual(hello_b["epoch"], hello["epoch"])
        self.assertNotIn("gap", [f["type"] for f in resumed])
        seqs = [f["seq"] for f in tasks_only(resumed)]
        self.assertEqual(seqs, self.stored_seqs(last)[:len(seqs)], "every stored event after since, once, in order")
        self.assertEqual(seqs[0], last + 1)

    def test_a_slow_transaction_holds_back_later_events_instead_of_leaving_a_hole(self):
        # Writers wait for the slow one's counter lock: their statements must not time out meanwhile.
        hold = max(1.5, scaled(0.5))
        a, b = self.replicas(2, "--workers", "4", "--database-timeout", str(int(hold * 3) + 5))
        slow_task = self.post(a, {"seconds": 0.1})
        self.wait_final(a, slow_task, 20)
        stored = self.stored_seqs()[-1]
        deadline = time.monotonic() + scaled(10)
        while b.request("GET", "/v1/status", admin=True).json["last_seq"] < stored:
            self.assertLess(time.monotonic(), deadline, "b read what was stored")
            time.sleep(0.02)
        # A writer that takes its seq first and commits last: with numbers from a sequence, the
        # events committed meanwhile would be read first and this one skipped for ever.
        slow = subprocess.Popen(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", PG.url(self.db), "-c",
             f"BEGIN; UPDATE quiesce_tasks SET progress = 0.5 WHERE id = '{slow_task}'; "
             f"SELECT pg_sleep({hold}); COMMIT;"],
            stdout=subprocess.DEVNULL)

        async def scenario():
            async with websockets.connect(b.ws_url("/v1/events")) as ws:
                hello = json.loads(await ws.recv())
                time.sleep(0.3)  # the slow transaction holds its number
                posted = []
                posters = [threading.Thread(target=lambda s=s: posted.extend(
                    self.post(s, {"seconds": 0.05}) for _ in range(5))) for s in (a, b)]
                for t in posters:
                    t.start()
                for t in posters:
                    t.join()
                frames = tasks_only(await collect_until(ws, ended(posted), scaled(30)))
                return hello, frames, posted

        hello, frames, posted = asyncio.run(scenario())
        self.assertEqual(slow.wait(scaled(30)), 0)
        seqs = [f["seq"] for f in frames]
        self.assertEqual(seqs, list(range(hello["seq"] + 1, hello["seq"] + 1 + len(seqs))), "no hole")
        progress = [f for f in frames if f["task_id"] == slow_task]
        self.assertEqual([f["progress"] for f in progress], [0.5], "the slow writer's event, once")
        self.assertLess(progress[0]["seq"], min(f["seq"] for f in frames if f["task_id"] in posted))

    def test_a_replica_that_fell_behind_the_window_tells_its_streams_gap(self):
        # b is paused (SIGSTOP: a replica cut off for a while) while a writes more events than the
        # window keeps and prunes the rest. When b reads on, what it can no longer read is a gap.
        a, b = self.replicas(2, "--workers", "2", "--event-retention", "5")

        async def scenario():
            async with websockets.connect(b.ws_url("/v1/events")) as ws:
                hello = json.loads(await ws.recv())
                b.signal(signal.SIGSTOP)
                try:
                    missed = [self.post(a, {"seconds": 0}) for _ in range(4)]  # 12 events
                    for i in missed:
                        self.wait_final(a, i, 20)
                    deadline = time.monotonic() + scaled(10)
                    while self.stored_seqs()[0] <= hello["seq"] + 1:
                        self.assertLess(time.monotonic(), deadline, "a pruned what b had not read")
                        time.sleep(0.05)
                finally:
                    b.signal(signal.SIGCONT)
                later = self.post(a, {"seconds": 0})
                return hello, await collect_until(ws, ended([later]), scaled(20)), later

        hello, frames, later = asyncio.run(scenario())
        types = [f["type"] for f in frames]
        self.assertIn("gap", types, "b's client must learn that it missed events")
        after_gap = tasks_only(frames[types.index("gap"):])
        # A read b sent just before the stop may be answered with a's first events (the database
        # runs it after they commit): those come before the gap, with no hole of their own.
        before = [f["seq"] for f in tasks_only(frames[:types.index("gap")])]
        self.assertEqual(before, list(range(hello["seq"] + 1, hello["seq"] + 1 + len(before))),
                         "what comes before the gap has no hole")
        seqs = [f["seq"] for f in after_gap]
        read_before = before[-1] if before else hello["seq"]
        self.assertGreater(seqs[0], read_before + 1, "the first event after the gap is past the hole")
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "no hole after the gap")
        self.assertIn((later, "succeeded"), {(f["task_id"], f["status"]) for f in after_gap})

    def test_a_draining_replica_streams_its_peers_events_until_its_own_work_is_done(self):
        a = self.replica("--workers", "1")
        own = self.post(a, {"seconds": scaled(2)})
        a.wait_status(own, "running")
        b = self.replica("--workers", "1")

        async def scenario():
            async with websockets.connect(a.ws_url("/v1/events")) as ws:
                await ws.recv()
                a.signal(signal.SIGTERM)
                time.sleep(0.2)
                later = self.post(b, {"seconds": 0.05})  # b runs it while a finishes its own
                frames, code = await read_to_close(ws, scaled(30))
                return later, frames, code

        later, frames, code = asyncio.run(scenario())
        self.assertEqual(code, 1012)
        self.assertEqual(frames[-1]["type"], "draining")
        outcomes = {(f["task_id"], f["status"]) for f in tasks_only(frames)}
        self.assertIn((own, "succeeded"), outcomes)
        self.assertIn((later, "succeeded"), outcomes, "the outcome of a task the peer ran")
        self.assertEqual(a.wait(scaled(10)), 0)


if __name__ == "__main__":
    unittest.main()
