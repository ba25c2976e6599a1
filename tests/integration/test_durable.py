"""Durable tasks on the real binary: SIGKILL at random moments, the shutdown deadline, and
storage that cannot be used (missing, read-only, corrupt, full, taken by another process)."""
import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest

import websockets

from harness import BIN, Server, read_to_close, scaled, send

ROUNDS = int(os.environ.get("QUIESCE_CRASH_ROUNDS", "10"))
EXIT_STORAGE = 74


def stored_statuses(data_dir):
    """task_id -> status as the database holds it (read once the server has exited)."""
    # closing(): sqlite3's own context manager ends a transaction but keeps the file open,
    # and an open reader would keep the next server out (one process per data directory).
    with contextlib.closing(sqlite3.connect(f"file:{data_dir}/quiesce.db?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT id, status FROM tasks"))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Follower:
    """A WebSocket client that follows every event across restarts, resuming with `since`, and
    records every seq it receives so that a gap or a repeat shows."""

    def __init__(self):
        self.epoch = None
        self.last_seq = 0
        self.seqs = []
        self.final = {}  # task_id -> final status seen
        self.requeued = set()
        self.attempts = {}  # task_id -> highest attempt seen
        self.on_final = None  # called at once when a task's final event arrives

    async def follow(self, server, hello_seen):
        url = server.ws_url("/v1/events" + (f"?since={self.last_seq}&epoch={self.epoch}" if self.epoch else ""))
        try:
            async with websockets.connect(url, max_size=None) as ws:
                async for raw in ws:
                    f = json.loads(raw)
                    if f["type"] == "hello":
                        if self.epoch is None:
                            self.epoch = f["epoch"]
                        assert f["epoch"] == self.epoch, "the epoch changed across a restart"
                        hello_seen.set()
                    elif f["type"] == "gap":
                        raise AssertionError("the store lost events inside the window")
                    elif f["type"] == "task":
                        self.seqs.append(f["seq"])
                        self.last_seq = f["seq"]
                        self.attempts[f["task_id"]] = max(self.attempts.get(f["task_id"], 0), f["attempt"])
                        if f.get("requeued"):
                            self.requeued.add(f["task_id"])
                        if f["status"] not in ("queued", "running"):
                            self.final[f["task_id"]] = f["status"]
                            if self.on_final:
                                self.on_final()
        except (websockets.ConnectionClosed, OSError):
            pass  # the server was killed (or drained): resume on the next one


def poster(server, accepted, stop, rng_seed):
    """POSTs short tasks until `stop` or the server dies; records every 202."""
    rng = random.Random(rng_seed)
    conn = server.connection(timeout=scaled(5))
    while not stop.is_set():
        try:
            r = send(conn, "POST", "/v1/tasks", {"kind": "sleep", "seconds": round(rng.uniform(0.05, 0.3), 2)})
        except OSError:
            return
        if r.status == 202:
            accepted[r.json["task_id"]] = time.monotonic()
        # About what the workers get through (8 x ~6/s), so the backlog stays short.
        time.sleep(rng.uniform(0.02, 0.08))


class CrashRounds(unittest.IsolatedAsyncioTestCase):
    async def test_sigkill_at_random_moments_loses_no_accepted_task_and_reruns_no_finished_one(self):
        seed = int(os.environ.get("QUIESCE_CRASH_SEED", time.time_ns() % 1_000_000))
        rng = random.Random(seed)
        data = tempfile.TemporaryDirectory(prefix="quiesce-crash-")
        follower = Follower()
        accepted = {}
        args = ("--workers", "8", "--log-level", "debug", "--close-spread", "0")
        stats = {"rescued": 0, "in_flight_at_kills": 0}
        reruns, absent_after_restart = [], []

        async def restart():
            """A server on the data directory; checks what it kept; the follower resumes.
            Also returns the tasks the client had seen finish before this server started (read
            first: the follower sees this server's own events as soon as it has said hello)."""
            finished_before = {t for t, st in follower.final.items() if st == "succeeded"}
            s = Server(*args, data_dir=data.name)
            stats["rescued"] += sum(l.get("rescued", 0) for l in s.logs() if l.get("msg") == "tasks recovered")
            # Every task that got a 202 before any kill is there after the restart.
            absent_after_restart.extend(t for t in accepted if s.request("GET", f"/v1/tasks/{t}").status != 200)
            hello = asyncio.Event()
            follow = asyncio.create_task(follower.follow(s, hello))
            await asyncio.wait_for(hello.wait(), scaled(5))
            return s, follow, finished_before

        def ran_again(s, finished_before):
            return sorted({l["task_id"] for l in s.logs() if l.get("msg") == "task ended"} & finished_before)

        try:
            for rnd in range(ROUNDS):
                s, follow, finished_before = await restart()
                try:
                    stop = threading.Event()
                    posters = [threading.Thread(target=poster, args=(s, accepted, stop, rng.random()))
                               for _ in range(2)]
                    for p in posters:
                        p.start()
                    await asyncio.sleep(rng.uniform(0.2, 1.5) * scaled(1))
                    if rnd % 2:
                        # The instant a client learns a task ended: had the event gone out before
                        # its commit, the restart would run that task again.
                        killed = asyncio.Event()
                        follower.on_final = lambda: (s.proc.kill(), killed.set())
                        await asyncio.wait_for(killed.wait(), scaled(5))
                        follower.on_final = None
                    else:
                        s.proc.kill()  # SIGKILL: no drain, no flush
                    s.wait(scaled(5))
                    stop.set()
                    for p in posters:
                        p.join()
                    await asyncio.wait_for(follow, scaled(5))
                    stats["in_flight_at_kills"] += len([t for t in accepted if t not in follower.final])
                    reruns += ran_again(s, finished_before)
                finally:
                    s.close()
            # The last process: everything accepted reaches `succeeded`, then a clean drain.
            s, follow, finished_before = await restart()
            try:
                deadline = time.monotonic() + scaled(30)
                while time.monotonic() < deadline and any(follower.final.get(t) != "succeeded" for t in accepted):
                    await asyncio.sleep(0.05)
                for t in accepted:
                    self.assertEqual(s.request("GET", f"/v1/tasks/{t}").json["status"], "succeeded",
                                     s.request("GET", f"/v1/tasks/{t}").raw)
                reruns += ran_again(s, finished_before)
                s.signal(signal.SIGTERM)
                self.assertEqual(s.wait(scaled(10)), 0)
                await asyncio.wait_for(follow, scaled(5))
            finally:
                s.close()
        finally:
            data.cleanup()
        gaps = [(a, b) for a, b in zip(follower.seqs, follower.seqs[1:]) if b != a + 1]
        summary = {"seed": seed, "rounds": ROUNDS, "accepted": len(accepted),
                   **stats,
                   "retried": sum(1 for a in follower.attempts.values() if a > 1),
                   "succeeded": sum(1 for t in accepted if follower.final.get(t) == "succeeded"),
                   "events": len(follower.seqs), "seq_gaps": len(gaps),
                   "reruns_of_finished": len(reruns), "absent_after_restart": len(absent_after_restart)}
        print("CRASH " + json.dumps(summary), flush=True)
        self.assertGreater(stats["in_flight_at_kills"], 0, "the kills caught tasks in flight")
        self.assertEqual(absent_after_restart, [])
        self.assertEqual([t for t in accepted if follower.final.get(t) != "succeeded"], [],
                         "every accepted task succeeds and its client is told")
        self.assertEqual(reruns, [], "a task a client saw finish ran again")
        self.assertEqual(gaps, [], "a reconnecting client missed or repeated events")


class Deadline(unittest.IsolatedAsyncioTestCase):
    async def test_tasks_longer_than_the_shutdown_timeout_are_requeued_and_finish_after_a_restart(self):
        data = tempfile.TemporaryDirectory(prefix="quiesce-deadline-")
        s = Server("--workers", "2", "--shutdown-timeout", scaled(0.5), "--close-spread", "0",
                   "--max-task-seconds", "60", data_dir=data.name)
        try:
            ws = await websockets.connect(s.ws_url("/v1/events"))
            await ws.recv()
            # Longer than the (scaled) shutdown timeout, short enough to finish after the restart.
            seconds = scaled(0.5) + 1.5
            ids = [s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": seconds}).json["task_id"]
                   for _ in range(3)]
            for t in ids[:2]:
                s.wait_status(t, "running")
            s.signal(signal.SIGTERM)
            frames, code = await read_to_close(ws, scaled(10))
            self.assertEqual(code, 1012)
            requeued = {f["task_id"] for f in frames if f.get("requeued")}
            self.assertEqual(requeued, set(ids), "every subscriber hears its task is requeued")
            self.assertFalse(any(f.get("status") == "interrupted" for f in frames))
            self.assertEqual(s.wait(scaled(5)), 2, "a forced drain exits 2")
        finally:
            s.close()
        self.assertEqual({t: stored_statuses(data.name)[t] for t in ids}, {t: "queued" for t in ids})
        s = Server("--workers", "2", data_dir=data.name)
        try:
            done = [s.wait_status(t, "succeeded", timeout=15).json for t in ids]
            self.assertEqual([d["attempt"] for d in done], [2, 2, 1], "the two that had started are retries")
            s.signal(signal.SIGTERM)
            self.assertEqual(s.wait(scaled(5)), 0)
        finally:
            s.close()
            data.cleanup()


class UnknownKind(unittest.TestCase):
    """A task kept from an earlier binary whose kind this one does not have (removed by an
    upgrade): it ends failed with an error naming the kind, and the server goes on serving."""

    def test_a_recovered_task_of_a_kind_this_binary_lacks_ends_failed(self):
        data = tempfile.TemporaryDirectory(prefix="quiesce-kind-")
        try:
            s = Server("--workers", "1", data_dir=data.name)
            try:
                tid = s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0}).json["task_id"]
                s.wait_status(tid, "succeeded")
                s.signal(signal.SIGTERM)
                self.assertEqual(s.wait(scaled(5)), 0)
            finally:
                s.close()
            # As the older binary left it: queued, of a kind this one no longer has.
            with contextlib.closing(sqlite3.connect(f"{data.name}/quiesce.db")) as db:
                db.execute("UPDATE tasks SET kind = 'retired', status = 'queued', progress = 0, "
                           "started_ms = NULL, finished_ms = NULL, finished_seq = NULL, "
                           "result = 'null' WHERE id = ?", (tid,))
                db.commit()
            s = Server("--workers", "1", data_dir=data.name)
            try:
                t = s.wait_status(tid, "failed", timeout=10).json
                self.assertIn("does not know the kind 'retired'", t["error"])
                after = s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0}).json["task_id"]
                s.wait_status(after, "succeeded", timeout=10)
                s.signal(signal.SIGTERM)
                self.assertEqual(s.wait(scaled(5)), 0)
            finally:
                s.close()
        finally:
            data.cleanup()


class BadStorage(unittest.TestCase):
    """Each refuses to start with exit 74 and one error line naming the file and the cause, and
    leaves the data as it was; or, while running, answers 503 and stores nothing it did not say."""

    def start_refused(self, data_dir, cause, run_as=(), binary=BIN):
        cmd = [binary, "--bind", "127.0.0.1", "--port", "0", "--admin-port", "0", "--data-dir", str(data_dir)]
        p = subprocess.run([*run_as, *cmd], capture_output=True, text=True, timeout=scaled(20),
                           env={k: v for k, v in os.environ.items() if not k.startswith("QUIESCE_")})
        lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        errors = [l for l in lines if l["level"] == "error"]
        self.assertEqual(p.returncode, EXIT_STORAGE, p.stdout + p.stderr)
        self.assertEqual(len(errors), 1, lines)
        self.assertIn(str(data_dir), errors[0]["file"])
        self.assertIn(cause, errors[0]["error"])
        self.assertFalse(any(l["msg"] == "listening" for l in lines))
        return errors[0]

    def test_a_missing_data_directory_is_refused_and_not_created(self):
        with tempfile.TemporaryDirectory() as d:
            missing = os.path.join(d, "volume")
            self.start_refused(missing, "No such file or directory")
            self.assertFalse(os.path.exists(missing))

    def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(self):
        with tempfile.TemporaryDirectory() as d:
            db = os.path.join(d, "quiesce.db")
            with open(db, "wb") as f:
                f.write(os.urandom(16384))
            before = sha256(db)
            self.start_refused(d, "not a database")
            self.assertEqual(sha256(db), before)

    def test_a_database_damaged_inside_is_refused_and_left_untouched(self):
        with tempfile.TemporaryDirectory() as d:
            s = Server("--task-seconds", "0", data_dir=d)
            try:
                ids = [s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0}).json["task_id"] for _ in range(50)]
                s.wait_status(ids[-1], "succeeded")
                s.signal(signal.SIGTERM)
                self.assertEqual(s.wait(scaled(5)), 0)
            finally:
                s.close()
            db = os.path.join(d, "quiesce.db")
            with contextlib.closing(sqlite3.connect(db)) as c:  # fold the WAL into the file
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            page = 4096
            self.assertGreater(os.path.getsize(db), 3 * page)
            with open(db, "r+b") as f:  # a torn write on a page of the tasks' B-tree
                f.seek(2 * page)
                f.write(b"\xff" * 64)
            before = sha256(db)
            self.start_refused(d, "corrupt")
            self.assertEqual(sha256(db), before)

    def test_a_data_directory_in_use_by_another_process_is_refused(self):
        s = Server()
        try:
            self.start_refused(s.data_dir, "another process")
            self.assertEqual(s.request("GET", "/v1/health").status, 200)  # the first is unharmed
        finally:
            s.close()

    def test_read_only_storage_is_refused(self):
        """As root, permissions do not stop a write: the server then runs as `nobody`."""
        with tempfile.TemporaryDirectory() as d:
            run_as, binary = (), BIN
            if os.geteuid() == 0:
                if not shutil.which("setpriv"):
                    self.skipTest("root without setpriv: cannot take the write permission away")
                os.chmod(d, 0o755)  # a copy of the binary nobody can reach (a checkout under /root)
                binary = shutil.copy(BIN, os.path.join(d, "quiesce"))
                run_as = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
            data = os.path.join(d, "data")
            os.mkdir(data)
            os.chmod(data, 0o555)
            self.start_refused(data, "unable to open", run_as, binary)
            self.assertEqual(os.listdir(data), [])
            # A database that exists but cannot be written (a volume mounted read-only).
            os.chmod(data, 0o755)
            db = os.path.join(data, "quiesce.db")
            sqlite3.connect(db).close()
            os.chmod(db, 0o444)
            os.chmod(data, 0o555)
            self.start_refused(data, "read", run_as, binary)


class FullDisk(unittest.TestCase):
    """A data directory on a 2 MiB tmpfs, filled up while the server runs."""

    def setUp(self):
        self.mnt = tempfile.mkdtemp(prefix="quiesce-full-")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", self.mnt],
                           capture_output=True, text=True)
        if p.returncode != 0:
            os.rmdir(self.mnt)
            self.skipTest(f"cannot mount a small tmpfs here: {p.stderr.strip() or p.returncode}")

    def tearDown(self):
        subprocess.run(["umount", self.mnt], check=True)
        os.rmdir(self.mnt)

    def fill(self):
        """Writes a file until the disk is full."""
        fd = os.open(os.path.join(self.mnt, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass  # ENOSPC
        finally:
            os.close(fd)

    def post(self, s, key):
        return s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0.3}, headers={"Idempotency-Key": key})

    def test_a_full_disk_answers_503_stores_nothing_it_acknowledged_and_recovers(self):
        s = Server("--workers", "2", data_dir=self.mnt)
        try:
            before = [self.post(s, f"before-{i}") for i in range(4)]
            self.assertEqual([r.status for r in before], [202] * 4)
            self.fill()
            refused, accepted_while_full = [], []
            for i in range(40):  # the WAL may still have room for a few
                r = self.post(s, f"full-{i}")
                if r.status == 503:
                    refused.append(f"full-{i}")
                    self.assertEqual(r.json["error"], "store_unavailable")
                    self.assertEqual(r.header("Retry-After"), "1")
                else:
                    self.assertEqual(r.status, 202, r.raw)
                    accepted_while_full.append(r.json["task_id"])
                if len(refused) >= 3:
                    break
            self.assertGreaterEqual(len(refused), 3, "a full disk never refused an admission")
            print("FULLDISK " + json.dumps({"accepted_while_full": len(accepted_while_full),
                                            "refused": len(refused)}), flush=True)
            self.assertTrue(any(l.get("msg") == "cannot store task changes" and "full" in l["error"]
                                for l in s.logs()), "the log names the cause")
            self.assertFalse(s.request("GET", "/v1/status", admin=True).json["store_healthy"])
            os.remove(os.path.join(self.mnt, "filler"))
            # Space again: the tasks accepted before all finish; new ones are accepted.
            for r in before:
                s.wait_status(r.json["task_id"], "succeeded", timeout=10)
            after = self.post(s, "after")
            self.assertEqual(after.status, 202)
            self.assertTrue(s.request("GET", "/v1/status", admin=True).json["store_healthy"])
            s.wait_status(after.json["task_id"], "succeeded", timeout=10)
            s.signal(signal.SIGTERM)
            self.assertEqual(s.wait(scaled(5)), 0)
        finally:
            s.close()
        # A restart knows every task it acknowledged and none it refused: the refused keys
        # create new tasks rather than replaying.
        s = Server("--workers", "2", data_dir=self.mnt)
        try:
            for t in [r.json["task_id"] for r in before] + accepted_while_full + [after.json["task_id"]]:
                self.assertEqual(s.request("GET", f"/v1/tasks/{t}").status, 200, t)
            for key in refused:
                r = self.post(s, key)
                self.assertEqual(r.status, 202)
                self.assertIsNone(r.header("Idempotent-Replayed"), f"{key} was stored after a 503")
            s.signal(signal.SIGTERM)
            s.wait(scaled(10))
        finally:
            s.close()
