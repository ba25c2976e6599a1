"""The address families a listener can be given (docs/configuration.md, --bind): an IPv4
address must work on a node without IPv6, an IPv6 address must work too."""
import asyncio
import json
import os
import signal
import socket
import subprocess
import unittest

import websockets

from harness import Server, read_to_close, scaled

SHIM = os.environ.get("QUIESCE_NO_IPV6_SHIM", "")


def without_ipv6():
    """The environment of a process on a kernel with IPv6 disabled. Under ASan the shim comes
    before the sanitizer's runtime in the library list, which ASan otherwise refuses."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": SHIM, "ASAN_OPTIONS": f"{asan}:verify_asan_link_order=0".lstrip(":")}


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Addresses(unittest.IsolatedAsyncioTestCase):
    async def serve_one_task_and_drain(self, s):
        """A task accepted, followed to its end over a WebSocket, then SIGTERM: exit 0."""
        async with websockets.connect(s.ws_url("/ws/addr")) as ws:
            hello = json.loads(await ws.recv())
            self.assertEqual(hello["type"], "hello")
            r = s.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0.05})
            self.assertEqual(r.status, 202, r.raw)
            task_id = r.json["task_id"]
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))
                if frame.get("task_id") == task_id and frame.get("status") == "succeeded":
                    break
            self.assertEqual(s.request("GET", "/readyz", admin=True).status, 200)
            s.signal(signal.SIGTERM)
            frames, code = await read_to_close(ws, scaled(10))
        self.assertEqual(code, 1012, frames)
        self.assertEqual(s.wait(scaled(10)), 0)

    async def test_an_ipv4_address_is_served_on_a_kernel_without_ipv6(self):
        self.assertTrue(os.path.exists(SHIM), f"shim not built: {SHIM!r}")
        # The shim must really take IPv6 away, or this test proves nothing.
        probe = subprocess.run(["/usr/bin/python3", "-c", "import socket; socket.socket(socket.AF_INET6)"],
                               env={**os.environ, **without_ipv6()}, capture_output=True, text=True)
        self.assertNotEqual(probe.returncode, 0)
        self.assertIn("Address family not supported", probe.stderr)

        s = Server("--store", "memory", host="127.0.0.1", env=without_ipv6())
        try:
            await self.serve_one_task_and_drain(s)
        finally:
            s.close()

    @unittest.skipUnless(ipv6_loopback(), "no IPv6 loopback on this machine")
    async def test_an_ipv6_address_is_served(self):
        s = Server("--store", "memory", host="::1")
        try:
            self.assertEqual(s.wait_log(lambda l: l.get("msg") == "listening", 1)["bind"], "::1")
            await self.serve_one_task_and_drain(s)
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main()
