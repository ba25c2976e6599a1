"""/docs in headless Debian chromium (npm playwright-core with executablePath): the form
submits a task whose progress bar reaches 100 % with its `succeeded` line; a SIGTERM shows the
draining banner with close code 1012; screenshots are saved under the test's output folder."""
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import Server, scaled  # noqa: E402
from test_openapi import HERE, node_modules_or_skip  # noqa: E402

OUT = os.environ.get("QUIESCE_TEST_OUTPUT", os.path.join(HERE, "output"))


class DocsPage(unittest.TestCase):
    def setUp(self):
        node_modules_or_skip(self)
        if not shutil.which(os.environ.get("CHROMIUM", "/usr/bin/chromium")):
            self.skipTest("Debian's chromium is not installed")
        self.s = Server("--store", "memory")
        self.addCleanup(self.s.close)

    def test_submit_follow_and_see_the_drain(self):
        out = subprocess.run(["node", os.path.join(HERE, "docs_page.mjs"), f"http://127.0.0.1:{self.s.port}",
                              str(self.s.proc.pid), OUT],
                             capture_output=True, text=True, timeout=scaled(120), cwd=HERE)
        print(out.stdout, out.stderr, sep="\n")
        self.assertEqual(out.returncode, 0, out.stderr)
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        self.assertGreaterEqual(summary["routes_listed"], 10)
        self.assertIn("succeeded 100 %", summary["succeeded_line"])
        self.assertIn("1012", summary["banner"])
        self.assertEqual(self.s.wait(scaled(10)), 0)
        with open(summary["screenshot"], "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        print("screenshot:", summary["screenshot"])


if __name__ == "__main__":
    unittest.main()
