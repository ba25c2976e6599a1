"""quiesce-cli against the real server: piped (JSON lines), under a pseudo-terminal (`script`,
a progress bar), its exit codes, and `submit --follow` across a drain where the server is
replaced by a new process on the same port."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import Server, scaled  # noqa: E402

CLI = os.environ.get("QUIESCE_CLI", "build/dev/cli/quiesce-cli")
OUT = os.environ.get("QUIESCE_TEST_OUTPUT", os.path.join(os.path.dirname(__file__), "output"))


def cli(server_port, *args, timeout=30):
    return subprocess.run([CLI, "--url", f"http://127.0.0.1:{server_port}", *map(str, args)],
                          capture_output=True, text=True, timeout=scaled(timeout))


def events(stdout):
    """Every stdout line must be a JSON object (piped output is machine-readable)."""
    return [json.loads(line) for line in stdout.splitlines()]


class Running:
    """quiesce-cli in the background, its stdout and stderr read line by line by two threads.
    (Mixing readline() with communicate() loses what readline() had buffered.)"""

    def __init__(self, port, *args):
        self.proc = subprocess.Popen([CLI, "--url", f"http://127.0.0.1:{port}", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out, self.err = [], []
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._read, args=(f, to), daemon=True)
                         for f, to in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._threads:
            t.start()

    def _read(self, stream, into):
        for line in stream:
            with self._cond:
                into.append(line)
                self._cond.notify_all()

    def wait_line(self, lines, pred, timeout):
        """The first line of `lines` (self.out or self.err) for which pred holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in lines:
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"line not seen; stdout {self.out[-3:]}, stderr {self.err}")
                self._cond.wait(left)

    def finish(self, timeout):
        """Waits for the exit; returns (exit code, stdout, stderr)."""
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code, "".join(self.out), "".join(self.err)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.finish(5)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Piped(unittest.TestCase):
    def setUp(self):
        self.s = Server("--store", "memory")
        self.addCleanup(self.s.close)

    def test_submit_follow_prints_json_lines_and_exits_0(self):
        r = cli(self.s.port, "submit", "--seconds", 0.5, "--follow")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        got = events(r.stdout)
        self.assertEqual({e["task_id"] for e in got}, {got[0]["task_id"]})
        self.assertEqual([e["status"] for e in got][0:2], ["queued", "running"])
        self.assertEqual((got[-1]["status"], got[-1]["progress"]), ("succeeded", 1.0))
        seqs = [e["seq"] for e in got]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))  # a fresh server: every event is this task's
        self.assertEqual(self.s.request("GET", f"/v1/tasks/{got[0]['task_id']}").json["status"], "succeeded")

    def test_a_cancelled_task_exits_1(self):
        c = Running(self.s.port, "submit", "--seconds", 10, "--follow")
        self.addCleanup(c.kill)
        first = json.loads(c.wait_line(c.out, lambda l: True, scaled(10)))
        self.assertEqual(self.s.request("DELETE", f"/v1/tasks/{first['task_id']}").status, 200)
        code, rest, _ = c.finish(scaled(10))
        self.assertEqual(code, 1)
        self.assertEqual(events(rest)[-1]["status"], "cancelled")

    def test_submit_status_and_watch(self):
        r = cli(self.s.port, "submit", "--kind", "cpu", "--iterations", 1000)
        self.assertEqual(r.returncode, 0, r.stderr)
        tid = json.loads(r.stdout)["task_id"]
        self.s.wait_status(tid, "succeeded")
        st = cli(self.s.port, "status", tid)
        self.assertEqual((st.returncode, json.loads(st.stdout)["status"]), (0, "succeeded"))
        health = cli(self.s.port, "status")
        self.assertEqual(json.loads(health.stdout), {"status": "ok", "tasks_queued_or_running": 0})
        ids = [self.s.request("POST", "/v1/tasks", {"seconds": 0.3}).json["task_id"] for _ in range(2)]
        w = cli(self.s.port, "watch", "--task", ids[0], "--task", ids[1])
        self.assertEqual(w.returncode, 0, w.stderr)
        ends = {e["task_id"]: e["status"] for e in events(w.stdout) if e["status"] == "succeeded"}
        self.assertEqual(ends, dict.fromkeys(ids, "succeeded"))

    def test_exit_codes_for_refusals_and_no_server(self):
        bad = cli(self.s.port, "submit", "--kind", "nope")
        self.assertEqual(bad.returncode, 4)
        self.assertIn("unknown_kind", bad.stderr)
        self.assertEqual(cli(self.s.port, "status", "no-such-task").returncode, 4)
        self.assertEqual(cli(self.s.port, "frobnicate").returncode, 2)
        gone = cli(free_port(), "status")
        self.assertEqual(gone.returncode, 3)
        self.assertIn("Connection refused", gone.stderr)


class CommandKinds(unittest.TestCase):
    """submit --kind K --param NAME=VALUE and the job options; retry ID."""

    def setUp(self):
        self.work = tempfile.TemporaryDirectory(prefix="quiesce-cli-kinds-")
        self.addCleanup(self.work.cleanup)
        program = os.path.join(self.work.name, "echo-params")
        with open(program, "w") as f:
            # Its params back as its result; fails when asked to.
            f.write("#!/usr/bin/python3\nimport json, os, sys\njob = json.load(sys.stdin)\n"
                    "os.fdopen(3, 'w').write(json.dumps({'result': job['params']}) + '\\n')\n"
                    "sys.exit(5 if job['params'].get('fail') else 0)\n")
        os.chmod(program, 0o700)
        kinds = os.path.join(self.work.name, "kinds.json")
        with open(kinds, "w") as f:
            json.dump({"kinds": {"echo": {"command": [program]}}}, f)
        self.s = Server("--store", "memory", "--kinds", kinds)
        self.addCleanup(self.s.close)

    def test_submit_params_and_options_then_retry_a_failed_task(self):
        r = cli(self.s.port, "submit", "--kind", "echo", "--param", "n=3", "--param", "name=ada",
                "--param", "fail=true", "--priority", 2, "--max-attempts", 1, "--follow")
        self.assertEqual(r.returncode, 1, r.stderr)  # it failed
        last = events(r.stdout)[-1]
        t = self.s.request("GET", f"/v1/tasks/{last['task_id']}").json
        self.assertEqual(t["params"], {"n": 3, "name": "ada", "fail": True})
        self.assertEqual((t["status"], t["priority"], t["error"]), ("failed", 2, "exit 5"))
        again = cli(self.s.port, "retry", t["task_id"], "--follow")
        self.assertEqual(again.returncode, 1, again.stderr)  # the same params fail again
        self.assertEqual(self.s.request("GET", f"/v1/tasks/{t['task_id']}").json["attempt"], 2)
        done = cli(self.s.port, "submit", "--kind", "echo", "--param", "n=1", "--delay", 0.2, "--follow")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("scheduled", [e["status"] for e in events(done.stdout)])
        self.assertEqual(cli(self.s.port, "retry", "no-such-task").returncode, 4)


class Help(unittest.TestCase):
    def test_help_lists_the_commands_and_options_a_user_types_and_no_internal_ones(self):
        r = subprocess.run([CLI, "--help"], capture_output=True, text=True, timeout=scaled(10))
        self.assertEqual(r.returncode, 0, r.stderr)
        for word in ("submit", "watch", "status", "retry", "--url", "--follow", "--task",
                     "--param", "--priority", "--delay", "--give-up arg (=60)"):
            self.assertIn(word, r.stdout)
        # The positional command and ids are parsed through hidden options.
        self.assertNotIn("--command", r.stdout)
        self.assertNotIn("--ids", r.stdout)


class Terminal(unittest.TestCase):
    @unittest.skipUnless(shutil.which("script"), "script(1) from util-linux is not installed")
    def test_follow_draws_a_progress_bar_on_a_terminal(self):
        s = Server("--store", "memory")
        self.addCleanup(s.close)
        cmd = f"{os.path.abspath(CLI)} --url http://127.0.0.1:{s.port} submit --seconds 0.5 --follow"
        # script -e: the command's exit code; the typescript goes nowhere, its output to us.
        r = subprocess.run(["script", "-qfec", cmd, "/dev/null"], capture_output=True,
                           timeout=scaled(30), stdin=subprocess.DEVNULL)
        screen = r.stdout.decode()  # bytes: text mode would turn each \r into a newline
        self.assertEqual(r.returncode, 0, screen)
        self.assertNotIn("{", screen)  # no JSON on a terminal
        self.assertIn("\r\x1b[K", screen)  # the bar is redrawn in place
        frames = [f for f in screen.split("\r\x1b[K") if f.strip()]
        self.assertGreaterEqual(len(frames), 5)
        self.assertRegex(frames[-1], r"^[0-9a-f]{8} sleep \[#{30}\] 100 % succeeded\r?\n$")
        self.assertRegex(screen, r"\[#{15}\.{15}\]  50 % running")


class AcrossADrain(unittest.TestCase):
    def test_follow_survives_the_server_being_replaced_on_the_same_port(self):
        """The task is running when SIGTERM comes; the deadline (1 s) requeues it in the durable
        store; the stream closes 1012; the CLI reconnects with backoff until a new process on
        the same port and data directory runs the task again, and exits 0 when it succeeds."""
        data = tempfile.TemporaryDirectory(prefix="quiesce-cli-")
        self.addCleanup(data.cleanup)
        port, admin = free_port(), free_port()
        common = ["--port", port, "--admin-port", admin, "--close-timeout", scaled(0.5)]
        # Not scaled: the deadline must come while the (timer-driven, 3 s) task still runs.
        a = Server(*common, "--shutdown-timeout", 1, data_dir=data.name)
        self.addCleanup(a.close)
        c = Running(port, "submit", "--seconds", 3, "--follow")
        self.addCleanup(c.kill)
        tid = json.loads(c.wait_line(c.out, lambda l: True, scaled(10)))["task_id"]
        a.wait_status(tid, "running")
        a.signal(signal.SIGTERM)
        self.assertEqual(a.wait(scaled(10)), 2)  # the deadline's exit code: work was requeued
        # Nobody on the port until the CLI has found so at least once: it keeps trying.
        c.wait_line(c.err, lambda l: "Connection refused" in l, scaled(15))
        b = Server(*common, data_dir=data.name)
        self.addCleanup(b.close)
        code, output, err = c.finish(scaled(30))
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, "cli-across-a-drain.txt"), "w") as f:
            f.write("$ quiesce-cli submit --seconds 3 --follow  (piped)\n" + output + "--- stderr\n" + err)
        print(output, err, sep="\n--- stderr\n")
        self.assertEqual(code, 0, err)
        got = events(output)
        seqs = [e["seq"] for e in got]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))  # none missed, none twice
        self.assertTrue(any(e.get("requeued") for e in got))
        self.assertEqual((got[-1]["status"], got[-1]["attempt"]), ("succeeded", 2))
        self.assertIn("stream closed 1012", err)
        self.assertRegex(err, r"Connection refused: reconnecting in \d+ ms \(attempt \d\)")
        self.assertIn("reconnected to", err)
        self.assertEqual(b.request("GET", f"/v1/tasks/{tid}").json["status"], "succeeded")

    def test_a_task_the_new_server_does_not_know_is_reported_lost(self):
        """--store memory and a crash: the replacement has another epoch and no such task; the
        CLI re-reads it over HTTP, says it was lost and exits 3."""
        port = free_port()
        a = Server("--store", "memory", "--port", port, "--admin-port", 0)
        self.addCleanup(a.close)
        c = Running(port, "submit", "--seconds", 5, "--follow")
        self.addCleanup(c.kill)
        tid = json.loads(c.wait_line(c.out, lambda l: True, scaled(10)))["task_id"]
        a.signal(signal.SIGKILL)
        a.wait(scaled(5))
        b = Server("--store", "memory", "--port", port, "--admin-port", 0)
        self.addCleanup(b.close)
        code, _, err = c.finish(scaled(30))
        self.assertEqual(code, 3, err)
        self.assertIn(f"the server does not know task {tid}: it was lost", err)


if __name__ == "__main__":
    unittest.main()
