"""Job options on every store (memory, sqlite, PostgreSQL), on the real binary: retries with
backoff and the errors of earlier attempts, priorities, delayed runs (status `scheduled`), per-task
timeouts, the retry route, and the 400s of bad options."""
import asyncio
import json
import os
import stat
import tempfile
import time
import unittest

import websockets

from harness import Server, scaled
import postgres

WORK = None
# Fails its first `fail_first` attempts (QUIESCE_ATTEMPT counts starts), then succeeds.
FLAKY = """#!/bin/sh
input=$(cat)
fail_first=$(printf '%s' "$input" | sed -n 's/.*"fail_first":\\([0-9]*\\).*/\\1/p')
if [ "$QUIESCE_ATTEMPT" -le "${fail_first:-0}" ]; then
  echo "attempt $QUIESCE_ATTEMPT broke" >&2
  exit 3
fi
echo '{"result":{"attempt":'"$QUIESCE_ATTEMPT"'}}' >&3
"""


def setUpModule():
    global WORK
    WORK = tempfile.TemporaryDirectory(prefix="quiesce-options-")
    program = os.path.join(WORK.name, "flaky")
    with open(program, "w") as f:
        f.write(FLAKY)
    os.chmod(program, stat.S_IRWXU)
    with open(kinds_file(), "w") as f:
        json.dump({"kinds": {"flaky": {"command": [program], "max_attempts": 3,
                                       "backoff_seconds": 0.2, "timeout_seconds": 60}}}, f)


def tearDownModule():
    postgres.close_cluster()
    WORK.cleanup()


def kinds_file():
    return os.path.join(WORK.name, "kinds.json")


class JobOptions:
    """The tests; each subclass names its store."""

    def setUp(self):
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.close()

    def store_args(self):
        raise NotImplementedError

    def server(self, *args):
        s = Server(*self.store_args(), "--kinds", kinds_file(), "--max-task-seconds", "60", *args)
        self.servers.append(s)
        return s

    def post(self, s, body):
        r = s.request("POST", "/v1/tasks", body)
        self.assertEqual(r.status, 202, r.raw)
        return r.json

    def final(self, s, task, timeout=15):
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            t = s.request("GET", f"/v1/tasks/{task}").json
            if t["status"] in ("succeeded", "failed", "cancelled", "interrupted"):
                return t
            time.sleep(0.05)
        raise AssertionError(f"{task} did not end: {t}")

    def test_a_failed_attempt_is_retried_after_a_backoff_and_its_error_kept(self):
        s = self.server()

        async def follow():
            async with websockets.connect(s.ws_url("/v1/events")) as ws:
                await ws.recv()  # hello
                task = self.post(s, {"kind": "flaky", "params": {"fail_first": 2}})["task_id"]
                statuses = []
                async with asyncio.timeout(scaled(15)):
                    while not statuses or statuses[-1] != "succeeded":
                        f = json.loads(await ws.recv())
                        if f.get("task_id") == task and (not statuses or f["status"] != statuses[-1]):
                            statuses.append(f["status"])
                return task, statuses

        task, statuses = asyncio.run(follow())
        self.assertEqual(statuses, ["queued", "running", "scheduled", "queued", "running",
                                    "scheduled", "queued", "running", "succeeded"])
        t = self.final(s, task)
        self.assertEqual(t["attempt"], 3)
        self.assertEqual(t["result"], {"attempt": 3})
        self.assertEqual([e["attempt"] for e in t["errors"]], [1, 2])
        self.assertEqual(t["errors"][0]["error"], "exit 3: attempt 1 broke")
        # The second retry waited longer than the first (0.2 s, then 0.4 s, each with jitter).
        first, second = (time.mktime(time.strptime(e["at"][:19], "%Y-%m-%dT%H:%M:%S"))
                         + float("0." + e["at"][20:23]) for e in t["errors"])
        self.assertGreaterEqual(second - first, 0.1)

    def test_attempts_used_up_end_failed_and_the_retry_route_runs_it_again(self):
        s = self.server()
        task = self.post(s, {"kind": "flaky", "params": {"fail_first": 2}, "max_attempts": 2})["task_id"]
        t = self.final(s, task)
        self.assertEqual((t["status"], t["attempt"], len(t["errors"])), ("failed", 2, 2))
        r = s.request("POST", f"/v1/tasks/{task}/retry")
        self.assertEqual(r.status, 202, r.raw)
        self.assertEqual(r.header("Location"), f"/v1/tasks/{task}")
        self.assertIn(r.json["status"], ("queued", "running"))
        t = self.final(s, task)
        self.assertEqual((t["status"], t["attempt"], t["result"]), ("succeeded", 3, {"attempt": 3}))
        self.assertEqual(s.request("POST", f"/v1/tasks/{task}/retry").status, 409)
        self.assertEqual(s.request("POST", "/v1/tasks/no-such-task/retry").status, 404)

    def test_lower_priority_numbers_run_first_and_equal_ones_in_arrival_order(self):
        s = self.server("--workers", "1")
        # Long enough that every task below is queued before it ends, under the sanitizers too.
        blocker = self.post(s, {"kind": "sleep", "seconds": scaled(1)})["task_id"]
        s.wait_status(blocker, "running")
        order = [9, 5, 0, 5, 0]
        # Each long enough that their start times (milliseconds) differ.
        tasks = [self.post(s, {"kind": "sleep", "seconds": 0.05, "priority": p})["task_id"]
                 for p in order]
        started = {t: self.final(s, t)["started_at"] for t in tasks}
        by_start = sorted(tasks, key=lambda t: started[t])
        self.assertEqual(by_start, [tasks[2], tasks[4], tasks[1], tasks[3], tasks[0]])

    def test_a_delayed_task_is_scheduled_then_runs_at_its_time(self):
        s = self.server()
        start = time.monotonic()
        t = self.post(s, {"kind": "sleep", "seconds": 0, "delay_seconds": 1})
        self.assertEqual(t["status"], "scheduled")
        self.assertIsNotNone(t["run_at"])
        self.assertEqual(s.request("GET", f"/v1/tasks/{t['task_id']}").json["status"], "scheduled")
        done = self.final(s, t["task_id"])
        self.assertEqual(done["status"], "succeeded")
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        past = self.post(s, {"kind": "sleep", "seconds": 0, "run_at": "2020-01-01T00:00:00Z"})
        self.assertEqual(past["status"], "queued")

    def test_a_scheduled_task_can_be_cancelled(self):
        s = self.server()
        task = self.post(s, {"kind": "sleep", "seconds": 0, "delay_seconds": 60})["task_id"]
        r = s.request("DELETE", f"/v1/tasks/{task}")
        self.assertEqual((r.status, r.json["status"]), (200, "cancelled"))

    def test_timeout_seconds_fails_a_built_in_attempt_that_runs_longer(self):
        s = self.server()
        task = self.post(s, {"kind": "sleep", "seconds": 5, "timeout_seconds": 0.3})["task_id"]
        t = self.final(s, task)
        self.assertEqual((t["status"], t["error"]), ("failed", "timed out after 0.3 s"))

    def test_bad_options_are_400_naming_the_field(self):
        s = self.server()
        for body, word in [({"priority": 10}, "priority"), ({"max_attempts": 0}, "max_attempts"),
                           ({"run_at": "tomorrow"}, "run_at"),
                           ({"run_at": "2030-01-01T00:00:00Z", "delay_seconds": 1}, "not both"),
                           ({"kind": "flaky", "params": {}, "timeout_seconds": 61}, "timeout_seconds"),
                           ({"kind": "flaky", "params": {}, "colour": 1}, "colour")]:
            r = s.request("POST", "/v1/tasks", body)
            self.assertEqual(r.status, 400, body)
            self.assertIn(word, r.json["detail"], body)


class MemoryStore(JobOptions, unittest.TestCase):
    def store_args(self):
        return ["--store", "memory"]


class SqliteStore(JobOptions, unittest.TestCase):
    def store_args(self):
        return []  # the harness gives each server a fresh data directory

    def test_a_scheduled_task_survives_a_restart(self):
        data = tempfile.TemporaryDirectory(prefix="quiesce-data-")
        try:
            first = Server("--data-dir", data.name)
            task = self.post(first, {"kind": "sleep", "seconds": 0,
                                     "delay_seconds": scaled(2)})["task_id"]
            self.assertEqual(first.stop(scaled(10)), 0)  # a drain does not wait for it
            first.close()
            second = Server("--data-dir", data.name)
            self.servers.append(second)
            self.assertEqual(second.request("GET", f"/v1/tasks/{task}").json["status"], "scheduled")
            self.assertEqual(self.final(second, task)["status"], "succeeded")
        finally:
            data.cleanup()


class PostgresStore(JobOptions, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.db = postgres.cluster().new_database()

    def store_args(self):
        return ["--store", "postgres", "--database-url", postgres.cluster().url(self.db)]

    def test_a_task_scheduled_on_one_replica_is_run_by_another(self):
        a = self.server()
        b = self.server()
        task = self.post(a, {"kind": "sleep", "seconds": 0, "delay_seconds": 1})["task_id"]
        self.assertEqual(a.stop(scaled(10)), 0)
        self.assertEqual(self.final(b, task)["status"], "succeeded")


if __name__ == "__main__":
    unittest.main()
