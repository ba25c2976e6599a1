"""/metrics on the admin port: a scrape before and after a known workload, counters moved by
exactly what the workload did, and the text parses strictly (Prometheus text format 0.0.4)."""
import asyncio
import json
import math
import re
import time
import unittest

import websockets

from harness import Server, collect_until, read_to_close, scaled

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse(text):
    """A strict reader of the text format: every family has HELP and TYPE before its samples,
    samples belong to the family just declared, no series twice, histograms are cumulative and
    end with +Inf == _count. Returns {(name, ((label, value), ...)): float}."""
    samples, helps, types = {}, {}, {}
    family = None
    assert text.endswith("\n"), "the exposition must end with a newline"
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(NAME, name) and name not in helps, line
            helps[name] = help_text
            family = name
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == family and kind in TYPES and name not in types, line
            types[name] = kind
            continue
        assert line and not line.startswith("#"), f"unexpected line: {line!r}"
        m = SAMPLE.match(line)
        assert m, f"not a sample: {line!r}"
        name, labels_text, value = m.groups()
        labels = []
        if labels_text:
            rest = labels_text
            while rest:
                lm = LABEL.match(rest)
                assert lm, f"bad labels in {line!r}"
                labels.append((lm.group(1), lm.group(2)))
                rest = rest[lm.end():]
        kind = types.get(family)
        allowed = {family}
        if kind == "histogram":
            allowed = {family + s for s in ("_bucket", "_sum", "_count")}
        assert name in allowed, f"{name} outside its family {family}"
        key = (name, tuple(sorted(labels)))
        assert key not in samples, f"series twice: {line!r}"
        samples[key] = float(value)
        if kind == "counter":
            assert samples[key] >= 0, line
    for name, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (n, labels), v in samples.items():
            if n == name + "_bucket":
                rest = tuple(l for l in labels if l[0] != "le")
                le = dict(labels)["le"]
                series.setdefault(rest, []).append((math.inf if le == "+Inf" else float(le), v))
        for rest, buckets in series.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), f"{name}{rest} buckets are not cumulative"
            assert buckets[-1][0] == math.inf, f"{name}{rest} has no +Inf bucket"
            assert buckets[-1][1] == samples[(name + "_count", rest)], f"{name}{rest}: +Inf != count"
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Metrics(unittest.TestCase):
    def setUp(self):
        self.s = Server("--store", "memory", "--queue-capacity", "77", "--workers", "4")

    def tearDown(self):
        self.s.close()

    def scrape(self):
        r = self.s.request("GET", "/metrics", admin=True)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/plain; version=0.0.4"))
        return parse(r.raw)

    def test_a_workload_moves_each_counter_by_exactly_what_it_did(self):
        before = self.scrape()

        async def workload():
            async with websockets.connect(self.s.ws_url("/v1/events")) as ws:
                hello = json.loads(await ws.recv())
                self.assertEqual(hello["type"], "hello")
                ids = []
                for body in ({"seconds": 0.3}, {"seconds": 0.3}, {"seconds": 0.3},
                             {"kind": "cpu", "iterations": 1000}):
                    r = self.s.request("POST", "/v1/tasks", body)
                    self.assertEqual(r.status, 202, r.raw)
                    ids.append(r.json["task_id"])
                self.assertEqual(self.s.request("POST", "/v1/tasks", "{nope",
                                                {"Content-Type": "application/json"}).status, 400)
                self.assertEqual(self.s.request("GET", "/no/such/route").status, 404)
                done = set()

                def all_done(f):
                    if f.get("type") == "task" and f["status"] == "succeeded":
                        done.add(f["task_id"])
                    return done == set(ids)

                frames = [hello] + await collect_until(ws, all_done, scaled(10))
                for tid in ids:
                    self.assertEqual(self.s.request("GET", f"/v1/tasks/{tid}").status, 200)
                await ws.close()
                return frames

        frames = asyncio.run(workload())
        # The stream's session has ended (its writes with it) once the gauge is back to zero.
        deadline = time.monotonic() + scaled(5)
        while (after := self.scrape()) and value(after, "quiesce_websockets_open") != 0:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        for status in ("queued", "running", "succeeded"):
            self.assertEqual(delta("quiesce_tasks_total", kind="sleep", status=status), 3, status)
            self.assertEqual(delta("quiesce_tasks_total", kind="cpu", status=status), 1, status)
        for status in ("failed", "cancelled", "interrupted"):
            self.assertEqual(delta("quiesce_tasks_total", kind="sleep", status=status), 0, status)
        self.assertEqual(delta("quiesce_task_duration_seconds_count", kind="sleep"), 3)
        self.assertGreaterEqual(delta("quiesce_task_duration_seconds_sum", kind="sleep"), 0.9)
        self.assertEqual(delta("quiesce_task_duration_seconds_count", kind="cpu"), 1)
        self.assertEqual(delta("quiesce_task_queue_wait_seconds_count", kind="sleep"), 3)
        self.assertEqual(delta("quiesce_task_duration_seconds_bucket", kind="sleep", le="0.1"), 0)
        self.assertEqual(delta("quiesce_task_duration_seconds_bucket", kind="sleep", le="0.5"), 3)

        self.assertEqual(delta("quiesce_http_requests_total", route="/v1/tasks", code="202"), 4)
        self.assertEqual(delta("quiesce_http_requests_total", route="/v1/tasks", code="400"), 1)
        self.assertEqual(delta("quiesce_http_requests_total", route="other", code="404"), 1)
        self.assertEqual(delta("quiesce_http_requests_total", route="/v1/tasks/{task_id}", code="200"), 4)
        self.assertEqual(delta("quiesce_http_requests_total", route="/v1/events", code="101"), 1)
        self.assertEqual(delta("quiesce_http_request_duration_seconds_count", route="/v1/tasks"), 5)
        # The scrapes count themselves: each is counted once answered, so seen by the next.
        scrapes = delta("quiesce_http_requests_total", route="/metrics", code="200")
        self.assertGreaterEqual(scrapes, 1)

        task_frames = [f for f in frames if f.get("type") == "task"]
        self.assertEqual(delta("quiesce_events_published_total"), len(task_frames))
        self.assertEqual(delta("quiesce_events_sent_total"), len(frames))
        self.assertEqual(delta("quiesce_websockets_dropped_slow_total"), 0)
        self.assertEqual(value(after, "quiesce_queue_capacity"), 77)
        self.assertEqual(value(after, "quiesce_queue_depth"), 0)
        self.assertEqual(value(after, "quiesce_tasks_running"), 0)
        self.assertEqual(value(after, "quiesce_tasks", status="succeeded"), 4)
        self.assertEqual(value(after, "quiesce_drain_phase", phase="running"), 1)
        self.assertEqual(value(after, "quiesce_drain_seconds_left"), -1)

    def test_the_drain_is_visible_in_phase_and_seconds(self):
        r = self.s.request("POST", "/v1/tasks", {"seconds": 2})
        self.assertEqual(r.status, 202)
        self.s.wait_status(r.json["task_id"], "running")
        self.s.signal()
        self.s.wait_log(lambda l: l.get("msg") == "drain started", scaled(5))
        m = self.scrape()
        self.assertEqual(value(m, "quiesce_drain_phase", phase="draining"), 1)
        self.assertEqual(value(m, "quiesce_drain_phase", phase="running"), 0)
        self.assertEqual(value(m, "quiesce_tasks_running"), 1)
        since = value(m, "quiesce_drain_seconds_since_signal")
        left = value(m, "quiesce_drain_seconds_left")
        self.assertTrue(0 <= since < scaled(2), since)
        self.assertAlmostEqual(since + left, 25, delta=0.05)  # --shutdown-timeout's default
        self.assertEqual(self.s.wait(scaled(10)), 0)


class Parser(unittest.TestCase):
    """The strict reader must be able to fail, or the test above proves nothing about format."""

    def test_it_refuses_what_is_not_the_format(self):
        good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
        self.assertEqual(parse(good), {("a_total", (("x", "1"),)): 2.0})
        for bad in ("a_total 1\n",                                              # no HELP/TYPE
                    good + "a_total{x=\"1\"} 3\n",                              # twice
                    good.replace("counter", "countr"),                          # bad type
                    good.replace('{x="1"}', "{x=1}"),                           # unquoted
                    "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                    "h_sum 1\nh_count 1\n",                                     # not cumulative
                    good.rstrip("\n")):                                         # no final newline
            with self.assertRaises(AssertionError, msg=bad):
                parse(bad)


if __name__ == "__main__":
    unittest.main()
