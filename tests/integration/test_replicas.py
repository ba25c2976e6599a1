"""Several replicas of the real binary on one real PostgreSQL (--store postgres): one queue, any
replica answers for any task, leases and rescue, fencing, the drain with peers, and outages."""
import concurrent.futures
import os
import signal
import subprocess
import threading
import time
import unittest

from harness import BIN, scaled
import postgres
from postgres import LEASE

EXIT_STORAGE = 74
PG = None


def setUpModule():
    global PG
    PG = postgres.cluster()


def tearDownModule():
    postgres.close_cluster()


class Replicas(postgres.ReplicaCase):
    def ran_here(self, server):
        """task_id -> attempts this replica ended (its debug log). A replica logs an end after
        the database has it, so a peer can read the end first: stop the replica to read it all."""
        self.assertEqual(server.stop(scaled(10)), 0)
        out = {}
        for l in server.logs():
            if l.get("msg") == "task ended":
                out.setdefault(l["task_id"], []).append(l["attempt"])
        return out

    # --- one service ------------------------------------------------------------------------
    def test_any_replica_answers_for_a_task_another_accepted(self):
        a, b = self.replicas(2, "--workers", "1")
        blocker = self.post(a, {"seconds": 15})  # a's only worker, or b's: one of them is busy
        other = self.post(a, {"seconds": 15})  # the other worker's
        queued = self.post(a, {"seconds": 15})
        for task in (blocker, other):
            a.wait_status(task, "running")  # each claimed by a free worker
        for s in (a, b):
            self.assertEqual(s.request("GET", f"/v1/tasks/{queued}").json["status"], "queued")
        length = b.request("GET", "/v1/get_queue_length/").json
        self.assertEqual(length, {"task_lenth": 3})
        status = b.request("GET", "/v1/status", admin=True).json
        self.assertEqual((status["queued"], status["running"]), (1, 2))
        # DELETE on b of a queued task, then of one each replica runs.
        r = b.request("DELETE", f"/v1/tasks/{queued}")
        self.assertEqual((r.status, r.json["status"]), (200, "cancelled"))
        for task in (blocker, other):
            start = time.monotonic()
            r = b.request("DELETE", f"/v1/tasks/{task}")
            self.assertEqual((r.status, r.json["status"]), (200, "cancelled"), r.raw)
            self.assertLess(time.monotonic() - start, scaled(2), "the owner cancels within a second")
            self.assertEqual(a.request("GET", f"/v1/tasks/{task}").json["status"], "cancelled")
        self.assertEqual(b.request("DELETE", f"/v1/tasks/{task}").status, 409)
        self.assertEqual(a.request("GET", "/v1/get_queue_length/").json, {"task_lenth": 0})

    def test_work_spreads_over_every_replica(self):
        servers = self.replicas(3, "--workers", "2")
        ids = [self.post(servers[0], {"seconds": 0.5}) for _ in range(12)]
        for i in ids:
            self.assertEqual(self.wait_final(servers[1], i, 20)["status"], "succeeded")
        counts = [len(self.ran_here(s)) for s in servers]
        self.assertEqual(sum(counts), 12, counts)
        self.assertTrue(all(c > 0 for c in counts), f"tasks per replica: {counts}")

    def test_idempotency_key_holds_across_replicas(self):
        servers = self.replicas(3)
        with concurrent.futures.ThreadPoolExecutor(9) as pool:
            rs = list(pool.map(lambda i: servers[i % 3].request(
                "POST", "/v1/tasks", {"seconds": 0.1}, {"Idempotency-Key": "same-key"}), range(9)))
        self.assertEqual({r.status for r in rs}, {202})
        self.assertEqual(len({r.json["task_id"] for r in rs}), 1)
        self.assertEqual(sum(1 for r in rs if r.header("Idempotent-Replayed") != "true"), 1)
        self.assertEqual(PG.psql("SELECT count(*) FROM quiesce_tasks", self.db), [["1"]])

    # --- leases -----------------------------------------------------------------------------
    def test_tasks_of_a_killed_replica_succeed_elsewhere(self):
        a = self.replica("--workers", "4")
        ids = [self.post(a, {"seconds": 3}) for _ in range(4)]
        for i in ids:
            a.wait_status(i, "running")
        b = self.replica("--workers", "4")
        killed = time.monotonic()
        a.signal(signal.SIGKILL)
        a.wait(10)
        for i in ids:
            t = self.wait_final(b, i, LEASE + 20)
            self.assertEqual((t["status"], t["attempt"]), ("succeeded", 2), t)
        self.assertEqual(sorted(self.ran_here(b)), sorted(ids))
        rescued = [l for l in b.logs() if l.get("msg") == "task rescued from a replica that stopped renewing its lease"]
        self.assertEqual(sorted(l["task_id"] for l in rescued), sorted(ids))
        print(f"\nSIGKILL to every task succeeded elsewhere: {time.monotonic() - killed:.2f} s "
              f"(lease {LEASE} s, tasks 3 s)")

    def test_a_paused_replica_cannot_overwrite_the_rescuer(self):
        a = self.replica("--workers", "1")
        task = self.post(a, {"seconds": 2})
        a.wait_status(task, "running")
        a.signal(signal.SIGSTOP)
        try:
            b = self.replica("--workers", "1")
            b.wait_log(lambda l: l.get("msg") == "task rescued from a replica that stopped renewing its lease",
                       LEASE + scaled(10))
            b.wait_status(task, "running")
        finally:
            a.signal(signal.SIGCONT)
        a.wait_log(lambda l: l.get("msg", "").startswith("lease lost") and l["task_id"] == task, scaled(10))
        t = self.wait_final(b, task, 20)
        self.assertEqual((t["status"], t["attempt"]), ("succeeded", 2), t)
        self.assertEqual(self.ran_here(a), {}, "the paused replica stored no end")
        self.assertEqual(self.ran_here(b), {task: [2]})
        self.assertEqual(PG.psql(f"SELECT status, attempt FROM quiesce_tasks WHERE id = '{task}'", self.db),
                         [["succeeded", "2"]])

    def test_a_stored_task_this_replica_cannot_run_ends_failed(self):
        a = self.replica("--workers", "1")
        # As another version might have written it: `seconds` is an integer, the kind reads a double.
        PG.psql("INSERT INTO quiesce_tasks (id, kind, params, status, message, created_us) VALUES "
                "('odd-1', 'sleep', '{\"seconds\":0}', 'queued', 'Task odd-1 queued', 0), "
                "('odd-2', 'nope', '{}', 'queued', 'Task odd-2 queued', 0); NOTIFY quiesce_work", self.db)
        for task in ("odd-1", "odd-2"):
            t = self.wait_final(a, task, 10)
            self.assertEqual(t["status"], "failed", t)
        self.assertIn("does not know the kind", a.request("GET", "/v1/tasks/odd-2").json["error"])
        self.assertEqual(self.wait_final(a, self.post(a), 10)["status"], "succeeded", "the worker is free")

    def test_an_end_the_database_refuses_is_rerun_after_the_lease(self):
        a = self.replica("--workers", "1")
        # The database refuses the first attempt's end (as a failing constraint would); the lease
        # must then run out, not be renewed for a run that is over.
        PG.psql("CREATE FUNCTION refuse_first() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.status = 'succeeded' AND NEW.attempt = 1 THEN RAISE EXCEPTION 'refused'; END IF; "
                "RETURN NEW; END $$; CREATE TRIGGER refuse_first BEFORE UPDATE ON quiesce_tasks "
                "FOR EACH ROW EXECUTE FUNCTION refuse_first()", self.db)
        task = self.post(a)
        a.wait_log(lambda l: l.get("msg") == "a task's end was refused by the database", scaled(10))
        t = self.wait_final(a, task, LEASE + 10)
        self.assertEqual((t["status"], t["attempt"]), ("succeeded", 2), t)

    # --- the drain --------------------------------------------------------------------------
    def test_a_draining_replica_leaves_the_queue_to_its_peers(self):
        a = self.replica("--workers", "2")
        ids = [self.post(a, {"seconds": 1}) for _ in range(10)]
        a.wait_status(ids[0], "running")
        b = self.replica("--workers", "2")
        time.sleep(0.2)
        start = time.monotonic()
        a.signal(signal.SIGTERM)
        self.assertEqual(a.wait(scaled(10)), 0)
        took = time.monotonic() - start
        ran_a = self.ran_here(a)
        self.assertLessEqual(len(ran_a), 6, "a stopped claiming once it knew of b")
        for i in ids:
            self.assertEqual(self.wait_final(b, i, 30)["status"], "succeeded")
        self.assertEqual(set(ran_a) | set(self.ran_here(b)), set(ids))
        self.assertLess(took, scaled(5), f"a exited after its own tasks: {took:.2f} s")

    def test_a_replica_alone_runs_the_queue_before_it_exits(self):
        a = self.replica("--workers", "2")
        ids = [self.post(a, {"seconds": 0.3}) for _ in range(6)]
        a.signal(signal.SIGTERM)
        self.assertEqual(a.wait(scaled(15)), 0)
        self.assertEqual(sorted(self.ran_here(a)), sorted(ids))

    def test_the_deadline_puts_a_running_task_back_for_the_next_replica(self):
        a = self.replica("--workers", "1", "--shutdown-timeout", scaled(1))
        task = self.post(a, {"seconds": 15})
        a.wait_status(task, "running")
        a.signal(signal.SIGTERM)
        self.assertEqual(a.wait(scaled(10)), 2, "forced: a task was still running")
        self.assertEqual(PG.psql(f"SELECT status, attempt, owner IS NULL FROM quiesce_tasks WHERE id = '{task}'",
                                 self.db), [["queued", "1", "t"]])
        b = self.replica("--workers", "1")
        b.wait_status(task, "running")
        self.assertEqual(b.request("GET", f"/v1/tasks/{task}").json["attempt"], 2)

    # --- faults -----------------------------------------------------------------------------
    def test_a_database_outage_answers_503_and_loses_nothing(self):
        a, b = self.replicas(2, "--workers", "4", "--database-timeout", "2")
        running = self.post(a, {"seconds": 2})
        a.wait_status(running, "running")
        # Two posters, one per replica, through the whole outage: each answer is a 202 or a 503.
        answers, stop = [], threading.Event()

        def poster(server):
            while not stop.is_set():
                start = time.monotonic()
                r = server.request("POST", "/v1/tasks", {"seconds": 0.1})
                answers.append((r.status, time.monotonic() - start, r.json, r.header("Retry-After")))
                time.sleep(0.02)

        threads = [threading.Thread(target=poster, args=(s,)) for s in (a, b)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            PG.stop()
            time.sleep(0.5)
            self.assertEqual(a.request("GET", f"/v1/tasks/{running}").status, 503)
            self.assertFalse(a.request("GET", "/v1/status", admin=True).json["store_healthy"])
            self.assertEqual(a.request("GET", "/readyz", admin=True).status, 200)
            time.sleep(2)  # the running task ends while the database is away
            PG.start()
            deadline = time.monotonic() + scaled(20)
            while not any(st == 202 for st, *_ in answers[-4:]):
                self.assertLess(time.monotonic(), deadline, "no 202 after the database came back")
                time.sleep(0.1)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join()
        refused = [x for x in answers if x[0] != 202]
        self.assertTrue(refused, "some POSTs came while the database was away")
        for status, took, body, retry in refused:
            self.assertEqual((status, body["error"]), (503, "store_unavailable"))
            self.assertIsNotNone(retry)
            self.assertLess(took, scaled(5), "a 503 within a few seconds, never a hang")
        accepted = [body["task_id"] for status, _, body, _ in answers if status == 202] + [running]
        for i in accepted:
            self.assertEqual(self.wait_final(b, i, 30)["status"], "succeeded", i)
        for s in (a, b):
            msgs = [l.get("msg") for l in s.logs()]
            self.assertEqual(msgs.count("database reachable again"), msgs.count("database unreachable"))
        changes = [l for l in a.logs() if l.get("msg") in ("database unreachable", "database reachable again")]
        self.assertEqual(sum(l["msg"] == "database unreachable" for l in changes), 1, f"each change logged once: {changes}")
        print(f"\noutage: {len(accepted)} accepted, all succeeded; {len(refused)} answered 503 "
              f"(slowest {max(t for _, t, _, _ in refused):.2f} s)")

    def test_a_database_that_cannot_be_used_exits_74(self):
        cases = {
            "postgresql://quiesce@127.0.0.1:%zz/x": "invalid",
            f"postgresql://quiesce@127.0.0.1:{postgres.free_port()}/x": "refused",
            PG.url("no_such_database"): "no_such_database",
        }
        for url, why in cases.items():
            p = subprocess.run([BIN, "--store", "postgres", "--database-url", url, "--port", "0", "--admin-port", "0",
                                "--database-timeout", "3"],
                               capture_output=True, text=True, timeout=scaled(30),
                               env={k: v for k, v in os.environ.items() if not k.startswith("QUIESCE_")})
            self.assertEqual(p.returncode, EXIT_STORAGE, (why, p.stdout))
            self.assertIn("cannot open the task store", p.stdout, why)

    def test_a_newer_schema_is_refused(self):
        self.replicas(1)[0].close()
        PG.psql("UPDATE quiesce_schema SET version = 99", self.db)
        s = self.replica(wait_listening=False)
        self.assertEqual(s.wait(scaled(20)), EXIT_STORAGE)
        self.assertIn("schema version 99", "\n".join(s.lines))


if __name__ == "__main__":
    unittest.main()
