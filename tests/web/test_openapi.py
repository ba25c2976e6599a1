"""/openapi.json: valid OpenAPI 3.1 by @apidevtools/swagger-parser (npm), every operation in it
answered with one of its documented codes, and no route answered that it does not list."""
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import Server, scaled  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")


def node_modules_or_skip(test):
    if not os.path.isdir(os.path.join(HERE, "node_modules")):
        test.skipTest("tests/web/node_modules is missing (npm ci in tests/web failed: no registry?)")


def validate(where):
    return subprocess.run(["node", os.path.join(HERE, "validate_openapi.mjs"), where],
                          capture_output=True, text=True, timeout=scaled(60), cwd=HERE)


class OpenApi(unittest.TestCase):
    def setUp(self):
        node_modules_or_skip(self)
        self.s = Server("--store", "memory", "--task-seconds", "0.05")
        self.addCleanup(self.s.close)

    def test_the_document_is_valid_and_matches_the_routes(self):
        out = validate(f"http://127.0.0.1:{self.s.port}/openapi.json")
        self.assertEqual(out.returncode, 0, out.stderr)
        operations = {(m, p): set(codes) for m, p, codes in json.loads(out.stdout)}
        paths = {p for _, p in operations}
        task_id = self.s.request("POST", "/v1/tasks", {"seconds": 0.05}).json["task_id"]
        self.s.wait_status(task_id, "succeeded")

        def concrete(path):
            return path.replace("{task_id}", task_id).replace("{client_id}", "openapi-test")

        # Every documented operation is answered with a code it documents.
        for (method, path), codes in sorted(operations.items()):
            body = {"seconds": 0.05} if (method, path) == ("POST", "/v1/tasks") else None
            r = self.s.request(method, concrete(path), body)
            self.assertIn(str(r.status), codes, f"{method} {path}: {r.status} {r.raw[:200]}")
            self.assertNotIn(r.status, (404, 405), f"{method} {path}")

        # The two WebSocket routes document 101: a real client gets it.
        async def upgrade(path):
            async with websockets.connect(f"ws://127.0.0.1:{self.s.port}{concrete(path)}") as ws:
                return json.loads(await ws.recv())["type"]

        for path in ("/v1/events", "/ws/{client_id}"):
            self.assertIn("101", operations[("GET", path)])
            self.assertEqual(asyncio.run(upgrade(path)), "hello")

        # A documented path answers the methods it does not document with 405 and an Allow
        # header naming exactly the documented ones.
        for path in sorted(paths):
            documented = {m for m, p in operations if p == path}
            for method in METHODS:
                if method in documented or (method == "HEAD"):
                    continue
                r = self.s.request(method, concrete(path))
                self.assertEqual(r.status, 405, f"{method} {path}: {r.status}")
                allowed = {m.strip() for m in r.header("Allow").split(",")}
                self.assertEqual(allowed, documented, f"Allow of {path}")

        # Paths near the documented ones, and the usual suspects, are not routes.
        near = {"/", "/docs/", "/openapi.yaml", "/redoc", "/favicon.ico", "/v1", "/v1/tasks/",
                f"/v1/tasks/{task_id}/x", "/v1/Tasks", "/ws/", "/ws/a/b", "/v1/events/",
                "/metrics", "/healthz", "/readyz", "/v1/status", "/v1/health/"}
        for path in paths:
            near |= {concrete(path) + "/x", concrete(path).upper()}
        templates = [re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(p))) for p in paths]
        for path in sorted(p for p in near if not any(t.fullmatch(p) for t in templates)):
            for method in ("GET", "POST", "DELETE"):
                r = self.s.request(method, path)
                self.assertEqual(r.status, 404, f"{method} {path} answered {r.status}: not in the document")

        # Every route the server counted in its metrics (it labels each answer with the route's
        # template; unknown paths are "other") is a documented path.
        metrics = self.s.request("GET", "/metrics", admin=True).raw
        counted = set(re.findall(r'^quiesce_http_requests_total\{code="\d+",route="([^"]+)"\}', metrics, re.M))
        admin = {"/metrics", "/healthz", "/readyz", "/v1/status"}
        self.assertTrue(counted - admin - {"other"})
        self.assertLessEqual(counted - admin - {"other"}, paths)

    def test_the_validator_fails_a_broken_document(self):
        doc = json.loads(self.s.request("GET", "/openapi.json").raw)
        doc["paths"]["/v1/tasks"]["post"]["responses"]["202"]["content"]["application/json"]["schema"] = \
            {"$ref": "#/components/schemas/NoSuchSchema"}
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(doc, f)
            f.flush()
            out = validate(f.name)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("NoSuchSchema", out.stderr)


if __name__ == "__main__":
    unittest.main()
