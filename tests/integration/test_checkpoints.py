"""Checkpoints survive a rollout: a command stopped by the shutdown deadline goes back to the queue
with its last checkpoint and no failure counted, and the next attempt (the next process on the
same sqlite file, or another replica on PostgreSQL) starts from it."""
import json
import os
import signal
import stat
import tempfile
import time
import unittest

from harness import Server, scaled
import postgres

# Counts to `steps` from its checkpoint, a checkpoint per step; its process group id goes to $PIDS.
COUNTER = """#!/usr/bin/python3
import json, os, sys, time
job = json.load(sys.stdin)
with open(os.environ['PIDS'], 'a') as f:
    f.write(f'{os.getpid()}\\n')
ch = os.fdopen(3, 'w', buffering=1)
start = (job['checkpoint'] or {}).get('done', 0)
steps = job['params']['steps']
for i in range(start, steps):
    time.sleep(job['params']['step_seconds'])
    ch.write(json.dumps({'checkpoint': {'done': i + 1}}) + '\\n')
    ch.write(json.dumps({'progress': (i + 1) / steps}) + '\\n')
ch.write(json.dumps({'result': {'started_from': start, 'attempt': job['attempt']}}) + '\\n')
"""

WORK = None


def setUpModule():
    global WORK
    WORK = tempfile.TemporaryDirectory(prefix="quiesce-checkpoints-")
    program = os.path.join(WORK.name, "counter")
    with open(program, "w") as f:
        f.write(COUNTER)
    os.chmod(program, stat.S_IRWXU)
    with open(kinds_file(), "w") as f:
        json.dump({"kinds": {"counter": {"command": [program], "kill_grace_seconds": 1,
                                         "env": {"PIDS": pids_file()}}}}, f)


def tearDownModule():
    postgres.close_cluster()
    WORK.cleanup()


def kinds_file():
    return os.path.join(WORK.name, "kinds.json")


def pids_file():
    return os.path.join(WORK.name, "pids")


def kill_leftovers():
    """A SIGKILLed server leaves its children to their pipes' EPIPE: end them here at once."""
    try:
        with open(pids_file()) as f:
            for pid in f.read().split():
                try:
                    os.killpg(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        os.unlink(pids_file())
    except FileNotFoundError:
        pass


def wait_checkpoint(server, task, at_least, timeout=10):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        r = server.request("GET", f"/v1/tasks/{task}")
        if r.status == 200 and (r.json.get("checkpoint") or {}).get("done", 0) >= at_least:
            return r.json
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint {at_least} stored for {task}")


COUNT = {"kind": "counter", "params": {"steps": 40, "step_seconds": 0.1}}


class SqliteRollout(unittest.TestCase):
    def tearDown(self):
        kill_leftovers()

    def test_the_deadline_requeues_a_command_with_its_checkpoint_and_the_next_process_resumes(self):
        data = tempfile.TemporaryDirectory(prefix="quiesce-data-")
        args = ("--kinds", kinds_file(), "--data-dir", data.name, "--shutdown-timeout", "1")
        first = Server(*args)
        try:
            task = first.request("POST", "/v1/tasks", COUNT).json["task_id"]
            wait_checkpoint(first, task, 5)
            self.assertNotEqual(first.stop(scaled(10)), 0)  # the deadline stopped it
        finally:
            first.close()
        second = Server(*args)
        try:
            t = second.request("GET", f"/v1/tasks/{task}").json
            self.assertIn(t["status"], ("queued", "running", "succeeded"))
            self.assertGreaterEqual(t["checkpoint"]["done"], 5)
            done = second.wait_status(task, "succeeded", timeout=10).json
            self.assertGreaterEqual(done["result"]["started_from"], 5)  # not from zero
            self.assertEqual(done["result"]["attempt"], 2)
            self.assertIsNone(done["error"])  # a requeue is no failure
        finally:
            second.close()
            data.cleanup()


    def test_the_built_in_sleep_resumes_from_its_checkpoint_after_a_restart(self):
        data = tempfile.TemporaryDirectory(prefix="quiesce-data-")
        args = ("--data-dir", data.name, "--shutdown-timeout", "1", "--max-task-seconds", "60")
        first = Server(*args)
        try:
            task = first.request("POST", "/v1/tasks", {"seconds": 8}).json["task_id"]
            deadline = time.monotonic() + scaled(10)
            while (first.request("GET", f"/v1/tasks/{task}").json["checkpoint"] or {}).get(
                    "slept_seconds", 0) < 4:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
            self.assertNotEqual(first.stop(scaled(10)), 0)
        finally:
            first.close()
        second = Server(*args)
        try:
            start = time.monotonic()
            done = second.wait_status(task, "succeeded", timeout=10).json
            # What was left (at most 4 s), not the whole 8 s again.
            self.assertLess(time.monotonic() - start, 6)
            self.assertEqual(done["attempt"], 2)
        finally:
            second.close()
            data.cleanup()


class PostgresRescue(postgres.ReplicaCase):
    def tearDown(self):
        super().tearDown()
        kill_leftovers()

    def test_a_rescued_command_resumes_from_its_checkpoint_on_another_replica(self):
        a = self.replica("--kinds", kinds_file(), "--workers", "1")
        task = self.post(a, COUNT)
        wait_checkpoint(a, task, 5)
        a.proc.kill()  # its lease runs out; its child dies of EPIPE or at kill_leftovers
        a.proc.wait()
        kill_leftovers()
        b = self.replica("--kinds", kinds_file(), "--workers", "1")
        done = self.wait_final(b, task, 30)
        self.assertEqual(done["status"], "succeeded", done)
        self.assertGreaterEqual(done["result"]["started_from"], 5)
        self.assertEqual(done["result"]["attempt"], 2)


if __name__ == "__main__":
    unittest.main()
