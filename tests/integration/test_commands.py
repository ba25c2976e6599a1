"""Command kinds (--kinds): real child processes run by the real binary. Each child here is a small
shell or Python program; a child that must be watched writes its process ids to a file, and the
test checks that none of them is left running or a zombie once its attempt ended."""
import json
import os
import signal
import socket
import stat
import subprocess
import tempfile
import time
import unittest

from harness import SCALE, Server, scaled

WORK = None  # the programs and the kinds file, made once

PROGRAMS = {
    # Ignores SIGTERM: only the SIGKILL after kill_grace stops it.
    "stubborn": "#!/bin/sh\ntrap '' TERM\necho $$ >> \"$PIDS\"\nsleep 60 & echo $! >> \"$PIDS\"\nwait\n",
    # Two grandchildren in its group.
    "family": "#!/bin/sh\nsleep 60 & echo $! >> \"$PIDS\"\nsleep 60 & echo $! >> \"$PIDS\"\n"
              "echo $$ >> \"$PIDS\"\nwait\n",
    # A grandchild in a session of its own (out of the group's reach), which exits a little later:
    # an orphan that comes back to the server to be reaped.
    "escapes": "#!/bin/sh\nsetsid sh -c 'echo $$ >> \"$PIDS\"; exec sleep 0.5' </dev/null >/dev/null 2>&1 3>&- &\n"
               "sleep 0.2\n",
    # Exits 0 at once while a grandchild keeps its stdout open.
    "leaves_stdout": "#!/bin/sh\nsleep 60 & echo $! >> \"$PIDS\"\necho done\nexit 0\n",
    # 100 MB on stdout and on stderr at once.
    "flood": "#!/bin/sh\nhead -c 100000000 /dev/zero | tr '\\0' 'x' &\n"
             "head -c 100000000 /dev/zero | tr '\\0' 'y' >&2\nwait\n",
    # Never reads its input.
    "deaf": "#!/bin/sh\nsleep 0.5\necho '{\"result\":\"ok\"}' >&3\n",
    # Exits before reading its input.
    "hasty": "#!/bin/sh\nexit 0\n",
    "fails": "#!/bin/sh\necho first >&2\necho 'the last words' >&2\nexit 3\n",
    "segfault": "#!/bin/sh\nkill -SEGV $$\n",
    "slow": "#!/bin/sh\nsleep 60\n",
    "not_a_program": "this is not a program\n",
    # What a child sees: its descriptors, its environment, its input.
    "inspect": "#!/usr/bin/python3\nimport json, os, sys\n"
               "job = json.load(sys.stdin)\n"
               # the listing's own descriptor is closed once listdir returns
               "fds = sorted(int(f) for f in os.listdir('/proc/self/fd')\n"
               "             if os.path.exists(f'/proc/self/fd/{f}'))\n"
               "out = os.fdopen(3, 'w')\n"
               "out.write(json.dumps({'result': {'fds': fds, 'env': dict(os.environ), 'job': job}}) + '\\n')\n",
    # Junk, a 10 MB line and invalid UTF-8 on descriptor 3, then progress, a checkpoint, a result.
    "noisy_channel": "#!/usr/bin/python3\nimport os\n"
                     "ch = os.fdopen(3, 'wb')\n"
                     "ch.write(b'not json\\n[1,2]\\n{\"other\":1}\\n')\n"
                     "ch.write(b'{\"result\":\"' + b'z' * 10_000_000 + b'\"}\\n')\n"
                     "ch.write(b'{\"result\":\"\\xff\\xfe\"}\\n')\n"
                     "ch.write(b'{\"progress\":0.5}\\n{\"checkpoint\":{\"at\":7}}\\n{\"result\":{\"n\":42}}\\n')\n",
    # Counts to `steps` from its checkpoint, a checkpoint per step of `step_seconds`.
    "counter": "#!/usr/bin/python3\nimport json, os, sys, time\n"
               "job = json.load(sys.stdin)\n"
               "ch = os.fdopen(3, 'w', buffering=1)\n"
               "start = (job['checkpoint'] or {}).get('done', 0)\n"
               "print('attempt', job['attempt'], 'from', start, flush=True)\n"
               "steps = job['params'].get('steps', 10)\n"
               "for i in range(start, steps):\n"
               "    time.sleep(job['params'].get('step_seconds', 0.1))\n"
               "    ch.write(json.dumps({'checkpoint': {'done': i + 1}}) + '\\n')\n"
               "    ch.write(json.dumps({'progress': (i + 1) / steps}) + '\\n')\n"
               "ch.write(json.dumps({'result': {'started_from': start}}) + '\\n')\n",
}


def setUpModule():
    global WORK
    WORK = tempfile.TemporaryDirectory(prefix="quiesce-kinds-")
    kinds = {}
    for name, text in PROGRAMS.items():
        path = os.path.join(WORK.name, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, stat.S_IRWXU)
        kinds[name] = {"command": [path], "kill_grace_seconds": 1,
                       "env": {"PIDS": os.path.join(WORK.name, f"{name}.pids"), "MODE": "test"}}
    kinds["slow"]["timeout_seconds"] = 0.5
    write_json(kinds_file(), {"kinds": kinds})


def tearDownModule():
    WORK.cleanup()


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


def kinds_file():
    return os.path.join(WORK.name, "kinds.json")


def pids_of(name):
    path = os.path.join(WORK.name, f"{name}.pids")
    with open(path) as f:
        return [int(l) for l in f.read().split()]


def state_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return out


def gone(pid):
    """Neither running nor a zombie: reaped."""
    return not os.path.exists(f"/proc/{pid}")


class Commands(unittest.TestCase):
    def setUp(self):
        for name in PROGRAMS:
            try:
                os.unlink(os.path.join(WORK.name, f"{name}.pids"))
            except FileNotFoundError:
                pass
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.close()

    def server(self, *args, env=None, wrapper=()):
        s = Server("--store", "memory", "--kinds", kinds_file(), "--workers", "4", *args, env=env,
                   wrapper=wrapper)
        self.servers.append(s)
        return s

    def run_task(self, s, kind, params=None, want="succeeded", timeout=10):
        r = s.request("POST", "/v1/tasks", {"kind": kind, "params": params or {}})
        self.assertEqual(r.status, 202, r.raw)
        return s.wait_status(r.json["task_id"], want, timeout).json

    def wait_pids(self, name, count):
        deadline = time.monotonic() + scaled(5)
        while time.monotonic() < deadline:
            try:
                if len(pids := pids_of(name)) >= count:
                    return pids
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        raise AssertionError(f"{name} never wrote {count} process ids")

    def assert_all_gone(self, pids):
        deadline = time.monotonic() + scaled(3)
        while time.monotonic() < deadline and not all(gone(p) for p in pids):
            time.sleep(0.02)
        self.assertEqual([p for p in pids if not gone(p)], [], "processes left behind")

    # --- the protocol -----------------------------------------------------------------------
    def test_a_child_gets_its_input_and_only_descriptors_0_to_3_and_its_own_environment(self):
        s = self.server(env={"QUIESCE_DATABASE_URL": "postgresql://secret", "SERVER_SECRET": "x"})
        t = self.run_task(s, "inspect", {"a": [1, 2]})
        got = t["result"]
        self.assertEqual(got["fds"], [0, 1, 2, 3])
        self.assertEqual(sorted(k for k in got["env"] if k != "LC_CTYPE"),  # python's own
                         ["MODE", "PATH", "PIDS", "QUIESCE_ATTEMPT", "QUIESCE_KIND",
                          "QUIESCE_TASK_ID"])
        self.assertEqual(got["env"]["QUIESCE_TASK_ID"], t["task_id"])
        self.assertEqual(got["env"]["QUIESCE_ATTEMPT"], "1")
        self.assertEqual(got["job"], {"task_id": t["task_id"], "kind": "inspect", "attempt": 1,
                                      "params": {"a": [1, 2]}, "checkpoint": None})

    def test_progress_checkpoint_and_result_come_from_descriptor_3_and_junk_is_ignored(self):
        s = self.server()
        t = self.run_task(s, "noisy_channel")
        self.assertEqual(t["result"], {"n": 42})
        self.assertEqual(t["checkpoint"], {"at": 7})
        ignored = [l for l in s.logs() if l.get("msg") == "descriptor 3 line ignored"]
        self.assertEqual(len(ignored), 5, ignored)  # 3 junk, the long line, the bad UTF-8

    def test_a_failed_exit_names_its_code_and_last_stderr_line_and_keeps_the_output(self):
        s = self.server()
        t = self.run_task(s, "fails", want="failed")
        self.assertEqual(t["error"], "exit 3: the last words")
        self.assertEqual(t["output"], "first\nthe last words\n")
        self.assertTrue(any(l.get("msg") == "task output" and l.get("line") == "first"
                            and l.get("task_id") == t["task_id"] for l in s.logs()))

    def test_a_signal_a_bad_program_and_a_timeout_each_fail_cleanly(self):
        s = self.server()
        self.assertEqual(self.run_task(s, "segfault", want="failed")["error"], "killed by SIGSEGV")
        self.assertIn("Exec format error", self.run_task(s, "not_a_program", want="failed")["error"])
        self.assertEqual(self.run_task(s, "slow", want="failed")["error"], "timed out after 0.5 s")
        self.assertEqual(self.run_task(s, "fails", want="failed")["status"], "failed")  # still serving

    def test_a_program_removed_after_start_up_fails_its_task(self):
        removable = os.path.join(WORK.name, "removable")
        with open(removable, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(removable, stat.S_IRWXU)
        path = os.path.join(WORK.name, "removable.json")
        write_json(path, {"kinds": {"removable": {"command": [removable]}}})
        s = Server("--store", "memory", "--kinds", path)
        self.servers.append(s)
        os.unlink(removable)
        t = self.run_task(s, "removable", want="failed")
        self.assertEqual(t["error"], f"cannot start {removable}: No such file or directory")

    # --- pipes ------------------------------------------------------------------------------
    def test_100_mb_on_stdout_and_stderr_at_once_neither_blocks_nor_grows_memory(self):
        s = self.server()
        t = self.run_task(s, "flood", timeout=60)
        self.assertLessEqual(len(t["output"]), 4096)
        self.assertTrue(set(t["output"]) <= {"x", "y", "\n"})
        with open(f"/proc/{s.proc.pid}/status") as f:
            peak_kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
        # Under the sanitizers freed memory waits in a quarantine (AddressSanitizer's: 256 MiB) and
        # shadow memory doubles the rest: there the bound says nothing about the server.
        if SCALE == 1:
            self.assertLess(peak_kb, 100 * 1024, "the server's peak memory grew with the output")
        logged = sum(len(l.get("line", "")) for l in s.logs() if l.get("msg") == "task output")
        self.assertLessEqual(logged, 2 * 64 * 1024)

    def test_params_a_child_never_reads_or_exits_before_reading_block_nothing(self):
        s = self.server("--body-limit", str(4 << 20))
        big = {"blob": "p" * (1 << 20)}
        self.assertEqual(self.run_task(s, "deaf", big)["result"], "ok")
        self.assertEqual(self.run_task(s, "hasty", big)["status"], "succeeded")
        self.assertIsNone(s.proc.poll())

    def test_a_grandchild_holding_stdout_does_not_hang_the_task_and_is_killed(self):
        s = self.server()
        start = time.monotonic()
        t = self.run_task(s, "leaves_stdout")
        self.assertLess(time.monotonic() - start, scaled(5))
        self.assertEqual(t["output"], "done\n")
        self.assert_all_gone(pids_of("leaves_stdout"))

    def test_an_orphan_that_left_the_group_is_reaped_when_it_exits(self):
        s = self.server()
        self.run_task(s, "escapes")
        [orphan] = self.wait_pids("escapes", 1)
        self.assertFalse(gone(orphan), "a setsid grandchild is out of its group's reach")
        self.assert_all_gone([orphan])  # it exited, came back to the server, and was reaped

    def test_as_pid_1_the_server_reaps_the_orphans_of_its_namespace(self):
        unshare = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]
        if subprocess.run([*unshare, "true"], capture_output=True).returncode != 0:
            self.skipTest("this machine cannot make a PID namespace (unshare --pid needs root)")
        s = self.server(wrapper=unshare)
        [server] = children_of(s.proc.pid)  # unshare's child: PID 1 in the new namespace
        self.run_task(s, "escapes")
        time.sleep(1)  # the orphan (0.5 s) has exited
        self.assertEqual([p for p in children_of(server) if state_of(p) == "Z"], [], "zombies")

    # --- stopping ---------------------------------------------------------------------------
    def test_delete_stops_a_child_that_ignores_sigterm_with_sigkill_after_the_grace(self):
        s = self.server()
        task = s.request("POST", "/v1/tasks", {"kind": "stubborn"}).json["task_id"]
        pids = self.wait_pids("stubborn", 2)
        start = time.monotonic()
        self.assertEqual(s.request("DELETE", f"/v1/tasks/{task}").status, 200)
        s.wait_status(task, "cancelled", timeout=5)
        self.assertGreaterEqual(time.monotonic() - start, 0.9)  # the grace (1 s) was given
        self.assert_all_gone(pids)

    def test_delete_stops_every_grandchild_of_the_group(self):
        s = self.server()
        task = s.request("POST", "/v1/tasks", {"kind": "family"}).json["task_id"]
        pids = self.wait_pids("family", 3)
        self.assertEqual(s.request("DELETE", f"/v1/tasks/{task}").status, 200)
        s.wait_status(task, "cancelled")
        self.assert_all_gone(pids)

    def test_a_child_keeps_no_listening_socket_after_the_server_is_killed(self):
        s = self.server()
        s.request("POST", "/v1/tasks", {"kind": "family"})
        pids = self.wait_pids("family", 3)
        port = s.port
        s.proc.kill()
        s.proc.wait()
        try:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(("127.0.0.1", port))  # no child holds the listener
        finally:
            for p in pids:
                try:
                    os.killpg(p, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def test_the_examples_run_as_the_readme_shows(self):
        examples = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "kinds.json")
        s = Server("--store", "memory", "--kinds", examples)
        self.servers.append(s)
        self.assertEqual(self.run_task(s, "countdown", {"from": 1})["result"], {"counted": 1})
        t = self.run_task(s, "report", {"pages": 2, "seconds_per_page": 0.05})
        self.assertEqual(t["result"], {"pages": 2, "resumed_from": 0})
        self.assertEqual(t["checkpoint"], {"pages_done": 2})

    # --- start-up ---------------------------------------------------------------------------
    def test_a_bad_kinds_file_stops_the_start_up_with_64_and_the_reason(self):
        path = os.path.join(WORK.name, "bad.json")
        cases = [
            ("{not json", "not valid JSON"),
            ({"kinds": {"x": {"command": ["/nonexistent/program"]}}}, "not an executable file"),
            ({"kinds": {"x": {"command": [kinds_file()]}}}, "not an executable file"),
            ({"kinds": {"x": {"command": ["/bin/true"], "colour": "red"}}}, "unknown key"),
            ({"kinds": {"sleep": {"command": ["/bin/true"]}}}, "built-in kind"),
            ({"kinds": {"x": {"timeout_seconds": 5}}}, "'command' is required"),
            ({"kinds": {"x": {"command": ["/bin/true"], "cwd": "/nonexistent"}}}, "not a directory"),
        ]
        for content, reason in cases:
            with open(path, "w") as f:
                f.write(content if isinstance(content, str) else json.dumps(content))
            s = Server("--store", "memory", "--kinds", path, wait_listening=False)
            self.servers.append(s)
            self.assertEqual(s.wait(scaled(10)), 64, reason)
            s._reader.join(timeout=5)
            self.assertTrue(any(reason in l.get("error", "") for l in s.logs()), (reason, s.lines))


if __name__ == "__main__":
    unittest.main()
