"""Every route and error code (docs/api.md, "Routes"), against the real binary."""
import json
import os
import socket
import subprocess
import unittest

from harness import Server, scaled, send


class Routes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Server("--task-seconds", "0.2", "--workers", "2", "--queue-capacity", "50",
                       "--body-limit", "1024", "--header-limit", "2048",
                       env={"KUBE_POD_NAME": "pod-a", "KUBE_POD_NAMESPACE": "ns-a"})

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def test_original_health(self):
        r = self.s.request("GET", "/v1/health")
        self.assertEqual((r.status, r.json), (200, {"status": "ok"}))

    def test_original_create_task_then_processed(self):
        r = self.s.request("POST", "/v1/create-task/")
        self.assertEqual(r.status, 200)
        tid = r.json["task_id"]
        self.assertEqual(r.json["message"], f"Task {tid} Queued")
        self.assertEqual(len(tid), 36)
        self.assertIn(self.s.request("GET", f"/v1/tasks/{tid}").json["message"],
                      (f"Task {tid} queued", f"Task {tid} running"))
        r = self.s.wait_status(tid, "succeeded")
        self.assertEqual(r.json["message"], f"Task {tid} processed")
        self.assertEqual(r.json["task_id"], tid)

    def test_original_unknown_task_is_404_with_detail(self):
        r = self.s.request("GET", "/v1/tasks/nope")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json["detail"], "Task not found")

    def test_original_queue_length_counts_queued_and_running(self):
        before = self.s.request("GET", "/v1/get_queue_length/").json["task_lenth"]
        for _ in range(3):
            self.s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 1})
        after = self.s.request("GET", "/v1/get_queue_length/").json["task_lenth"]
        self.assertGreaterEqual(after, before + 3)

    def test_native_post_is_202_with_location_and_record(self):
        r = self.s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0.1})
        self.assertEqual(r.status, 202)
        tid = r.json["task_id"]
        self.assertEqual(r.header("Location"), f"/v1/tasks/{tid}")
        for key in ("task_id", "kind", "status", "progress", "message", "created_at", "started_at",
                    "finished_at", "result", "error"):
            self.assertIn(key, r.json)
        self.assertEqual(r.json["status"], "queued")
        self.assertIsNone(r.json["started_at"])
        done = self.s.wait_status(tid, "succeeded").json
        self.assertTrue(done["finished_at"].endswith("Z"))
        self.assertEqual(done["progress"], 1)

    def test_native_post_without_body_runs_default_sleep(self):
        r = self.s.request("POST", "/v1/tasks")
        self.assertEqual(r.status, 202)
        self.assertEqual(r.json["kind"], "sleep")
        self.assertEqual(r.json["params"]["seconds"], 0.2)

    def test_cpu_kind_alone_is_valid_and_runs_off_the_network_threads(self):
        r = self.s.request("POST", "/v1/tasks", {"kind": "cpu", "iterations": 3000000})
        self.assertEqual(r.status, 202)
        # The server keeps answering while CPU work runs.
        self.assertEqual(self.s.request("GET", "/healthz", admin=True).status, 200)
        done = self.s.wait_status(r.json["task_id"], "succeeded", timeout=20).json
        self.assertEqual(done["result"]["iterations"], 3000000)
        self.assertEqual(self.s.request("POST", "/v1/tasks", {"kind": "cpu"}).status, 202)

    def test_bad_input_gets_a_clear_json_error(self):
        cases = [
            ("malformed JSON", "{nope", {"Content-Type": "application/json"}, 400, "malformed_json", None),
            ("not an object", "[1]", {"Content-Type": "application/json"}, 400, "malformed_json", None),
            ("unknown kind", {"kind": "teleport"}, None, 400, "unknown_kind", "teleport"),
            ("bad parameter", {"kind": "sleep", "seconds": -3}, None, 400, "bad_parameter", "seconds"),
            ("unknown parameter", {"kind": "sleep", "secs": 1}, None, 400, "bad_parameter", "secs"),
            ("not JSON", "seconds=1", {"Content-Type": "text/plain"}, 415, "unsupported_media_type", None),
        ]
        for name, body, headers, status, code, mentions in cases:
            with self.subTest(name):
                r = self.s.request("POST", "/v1/tasks", body, headers)
                self.assertEqual(r.status, status, r.raw)
                self.assertEqual(r.json["error"], code)
                self.assertTrue(r.json["detail"])
                if mentions:
                    self.assertIn(mentions, r.json["detail"])

    def test_unknown_route_is_404_and_wrong_method_is_405_with_allow(self):
        r = self.s.request("GET", "/nowhere")
        self.assertEqual((r.status, r.json["error"]), (404, "not_found"))
        r = self.s.request("PUT", "/v1/tasks")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "POST")
        r = self.s.request("POST", "/v1/tasks/abc")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "GET, DELETE")

    def test_body_over_the_limit_is_413(self):
        r = self.s.request("POST", "/v1/tasks", "x" * 5000, {"Content-Type": "application/json"})
        self.assertEqual((r.status, r.json["error"]), (413, "body_too_large"))

    def test_headers_over_the_limit_are_431(self):
        r = self.s.request("GET", "/v1/health", headers={"X-Big": "y" * 4000})
        self.assertEqual((r.status, r.json["error"]), (431, "headers_too_large"))

    def test_garbage_is_400_and_the_server_keeps_serving(self):
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=scaled(5)) as c:
            c.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            answer = c.recv(4096).decode()
        self.assertTrue(answer.startswith("HTTP/1.1 400"), answer)
        self.assertEqual(self.s.request("GET", "/v1/health").status, 200)

    def test_idempotency_key_returns_the_same_task(self):
        h = {"Idempotency-Key": "order-42"}
        a = self.s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0.1}, h)
        b = self.s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0.1}, h)
        self.assertEqual((a.status, b.status), (202, 202))
        self.assertEqual(a.json["task_id"], b.json["task_id"])
        c = self.s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0.1}, {"Idempotency-Key": "order-43"})
        self.assertNotEqual(a.json["task_id"], c.json["task_id"])

    def test_delete_cancels_queued_and_running_then_409(self):
        # Two workers: fill them, then one more waits in the queue.
        running = [self.s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 5}).json["task_id"] for _ in range(2)]
        queued = self.s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 5}).json["task_id"]
        self.s.wait_status(running[0], "running")
        for tid in [queued] + running:
            r = self.s.request("DELETE", f"/v1/tasks/{tid}")
            self.assertEqual((r.status, r.json["status"]), (200, "cancelled"), r.raw)
        r = self.s.request("DELETE", f"/v1/tasks/{queued}")
        self.assertEqual((r.status, r.json["error"]), (409, "already_finished"))
        self.assertEqual(self.s.request("DELETE", "/v1/tasks/missing").status, 404)

    def test_admin_probes_status_and_metrics(self):
        for path, want in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
            r = self.s.request("GET", path, admin=True)
            self.assertEqual((r.status, r.header("content-type"), r.json),
                             (200, "application/json", want), path)
        st = self.s.request("GET", "/v1/status", admin=True).json
        for key in ("phase", "queued", "running", "websockets", "deadline_in_ms"):
            self.assertIn(key, st)
        self.assertEqual(st["phase"], "running")
        m = self.s.request("GET", "/metrics", admin=True)
        self.assertEqual(m.status, 200)
        self.assertIn("text/plain", m.header("Content-Type"))
        for family in ("quiesce_tasks{status=\"succeeded\"}", "quiesce_queue_depth", "quiesce_websockets_open",
                       "quiesce_drain_phase{phase=\"running\"} 1", "# TYPE quiesce_tasks gauge"):
            self.assertIn(family, m.raw)
        self.assertEqual(self.s.request("GET", "/v1/tasks", admin=True).status, 404)

    def test_curl_submits_and_reads_a_task(self):
        out = subprocess.run(["curl", "-sS", "-i", "-X", "POST", f"http://127.0.0.1:{self.s.port}/v1/tasks",
                              "-H", "Content-Type: application/json", "-d", '{"kind":"sleep","seconds":0.05}'],
                             capture_output=True, text=True, timeout=scaled(10), check=True).stdout
        head, body = out.split("\n\n", 1)  # text mode turned \r\n into \n
        self.assertTrue(head.startswith("HTTP/1.1 202"), head)
        self.assertIn("Location: /v1/tasks/", head)
        tid = json.loads(body)["task_id"]
        self.s.wait_status(tid, "succeeded")
        got = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", f"http://127.0.0.1:{self.s.port}/v1/tasks/{tid}"],
                             capture_output=True, text=True, timeout=scaled(10), check=True).stdout
        body, code = got.rsplit("\n", 1)
        self.assertEqual(code, "200")
        self.assertEqual(json.loads(body)["message"], f"Task {tid} processed")
        # Numbers as a person writes them (not Boost.JSON's 5E-2 and 1E0).
        self.assertIn('"seconds":0.05', body)
        self.assertIn('"progress":1,', body)


class QueueLimit(unittest.TestCase):
    def test_full_queue_is_429_with_retry_after(self):
        s = Server("--workers", "1", "--queue-capacity", "2", "--task-seconds", "5")
        try:
            codes = [s.request("POST", "/v1/tasks").status for _ in range(4)]
            # One may already be running, so at most 3 are accepted before the queue is full.
            self.assertIn(429, codes)
            r = s.request("POST", "/v1/tasks")
            self.assertEqual((r.status, r.json["error"]), (429, "queue_full"))
            self.assertEqual(r.header("Retry-After"), "1")
        finally:
            s.close()


class Configuration(unittest.TestCase):
    def test_help_lists_knobs_and_bad_values_exit_with_a_reason(self):
        from harness import BIN
        out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=scaled(10))
        self.assertEqual(out.returncode, 0)
        self.assertIn("--shutdown-timeout", out.stdout)
        bad = subprocess.run([BIN, "--workers", "0"], capture_output=True, text=True, timeout=scaled(10))
        self.assertNotEqual(bad.returncode, 0)
        line = json.loads(bad.stdout.strip().splitlines()[-1])
        self.assertEqual(line["level"], "error")
        self.assertIn("--workers", line["error"])

    def test_placeholder_text_in_an_option_or_value_is_refused_not_a_hang(self):
        # Found by fuzz.config: Boost.Program_options expands %value% and the like in its error
        # messages over and over, so `--port %value%` used to hang at start-up instead of exiting.
        from harness import BIN
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUIESCE_")}
        for args, extra_env, knob in ((["--port", "%value%"], {}, "--port"),
                                      (["--x%canonical_option%"], {}, "%canonical_option%"),
                                      ([], {"QUIESCE_BIND": "%value%"}, "QUIESCE_BIND")):
            bad = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=scaled(10),
                                 env={**env, **extra_env})
            self.assertEqual(bad.returncode, 64, args or extra_env)
            self.assertIn(knob, json.loads(bad.stdout.strip().splitlines()[-1])["error"])

    def test_long_port_numbers_and_abbreviated_options_are_refused(self):
        # Found by fuzz.config: `--a 1999...9` was read as --admin-port through a 16-bit cast that
        # overflows (undefined behaviour); abbreviations are no longer guessed at all.
        from harness import BIN
        for args, knob in ((["--port", "1999999999999999999"], "--port"),
                           (["--admin-port", "65536"], "--admin-port"),
                           (["--a", "1"], "--a"), (["--work", "3"], "--work")):
            bad = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=scaled(10))
            self.assertEqual(bad.returncode, 64, args)
            self.assertIn(knob, json.loads(bad.stdout.strip().splitlines()[-1])["error"])

    def test_listening_and_phase_lines_are_written_at_any_log_level(self):
        import signal
        s = Server("--log-level", "error")  # Server() itself waits for `listening`
        try:
            s.signal(signal.SIGTERM)
            self.assertEqual(s.wait(scaled(5)), 0)
            msgs = [l["msg"] for l in s.logs()]
            self.assertEqual(msgs, ["listening", "drain started", "listeners closed", "tasks finished",
                                    "streams closed", "stopped"])
        finally:
            s.close()

    def test_environment_variable_sets_a_knob(self):
        s = Server(env={"QUIESCE_QUEUE_CAPACITY": "7"})
        try:
            self.assertEqual(s.request("GET", "/v1/status", admin=True).json["queue_capacity"], 7)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main()
