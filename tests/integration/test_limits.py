"""Every limit and timeout on the public port, on the real binary over real sockets: what a client
past a limit sees, how fast, and that the server goes on serving others."""
import asyncio
import base64
import os
import re
import socket
import threading
import time
import unittest

import websockets

from harness import Server, scaled

REQUEST = b"GET /v1/health HTTP/1.1\r\nHost: quiesce\r\n\r\n"


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=scaled(5))


def until_closed(sock, timeout):
    """Reads until the server ends the connection (EOF or reset): (seconds it took, bytes read)."""
    started = time.monotonic()
    data = b""
    sock.settimeout(timeout)
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError(f"the server kept the connection open for {timeout} s; read {data!r}")
    return time.monotonic() - started, data


def served(port):
    """Whether a new connection gets its request answered (not reset at accept)."""
    try:
        with connect(port) as s:
            s.sendall(REQUEST)
            return s.recv(4096).startswith(b"HTTP/1.1 200")
    except (ConnectionResetError, BrokenPipeError):
        return False


def eventually(pred, timeout):
    # Only for what the server does after a client left: no event reaches the test for that.
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Limits(unittest.TestCase):
    def test_connections_past_the_limit_are_reset_at_once_and_served_again_when_one_ends(self):
        server = Server("--max-connections", 3)
        try:
            held = [connect(server.port) for _ in range(3)]
            for s in held[:1]:
                s.sendall(REQUEST)
                self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
            started = time.monotonic()
            try:  # the reset may reach the client while it connects, or at its first read
                with connect(server.port) as extra:
                    extra.sendall(REQUEST)
                    _, data = until_closed(extra, scaled(5))
            except ConnectionResetError:
                data = b""
            took = time.monotonic() - started
            self.assertEqual(data, b"", "reset without an answer")
            self.assertLess(took, scaled(0.2), "refused fast, never a hang")
            status = server.request("GET", "/v1/status", admin=True).json
            self.assertEqual((status["connections"], status["connections_refused"]), (3, 1))
            server.wait_log(lambda l: l.get("msg") == "connection refused: limit reached", scaled(5))
            held.pop().close()
            self.assertTrue(eventually(lambda: served(server.port), scaled(5)))
            for s in held:
                s.close()
        finally:
            server.close()

    def test_websockets_past_the_limit_get_503_with_retry_after(self):
        server = Server("--max-websockets", 2)

        async def run():
            url = server.ws_url("/ws/limit")
            async with websockets.connect(url) as a, websockets.connect(url) as b:
                # A stream counts once registered, which is before its `hello` and after its 101.
                await a.recv()
                await b.recv()
                with self.assertRaises(websockets.InvalidStatusCode) as refused:
                    async with websockets.connect(url):
                        pass
                self.assertEqual(refused.exception.status_code, 503)
                self.assertEqual(refused.exception.headers.get("Retry-After"), "1")
            # Both closed: a new stream is accepted once the server has counted them out.
            deadline = time.monotonic() + scaled(5)
            while True:
                try:
                    async with websockets.connect(url) as ws:
                        self.assertEqual((await ws.recv())[:16], '{"type":"hello",')
                        return
                except websockets.InvalidStatusCode:
                    self.assertLess(time.monotonic(), deadline)
                    await asyncio.sleep(0.02)

        try:
            asyncio.run(run())
        finally:
            server.close()

    def test_a_message_past_the_limit_is_closed_1009(self):
        server = Server("--ws-message-limit", 64)

        async def run():
            async with websockets.connect(server.ws_url("/ws/big")) as ws:
                await ws.recv()  # hello
                await ws.send('{"type":"subscribe","all":true}' + " " * 64)
                with self.assertRaises(websockets.ConnectionClosed):
                    while True:
                        await asyncio.wait_for(ws.recv(), scaled(5))
                self.assertEqual(ws.close_code, 1009)

        try:
            asyncio.run(run())
        finally:
            server.close()

    def test_finished_tasks_past_the_retention_are_forgotten_oldest_first(self):
        server = Server("--task-retention", 2, "--workers", 1)
        try:
            ids = []
            for i in range(3):
                r = server.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0},
                                   headers={"Idempotency-Key": f"k{i}"})
                self.assertEqual(r.status, 202)
                ids.append(r.json["task_id"])
            # One worker runs them in order: once the last has finished, the first has been forgotten.
            server.wait_status(ids[2], "succeeded")
            self.assertEqual(server.request("GET", f"/v1/tasks/{ids[0]}").status, 404)
            self.assertEqual(server.request("GET", f"/v1/tasks/{ids[1]}").json["status"], "succeeded")
            again = server.request("POST", "/v1/tasks", {"kind": "sleep", "seconds": 0},
                                   headers={"Idempotency-Key": "k0"})
            self.assertEqual(again.status, 202)
            self.assertNotEqual(again.json["task_id"], ids[0], "its key was forgotten with it")
        finally:
            server.close()


class Timeouts(unittest.TestCase):
    def assert_cut_off_at(self, timeout, took, data):
        """The server ended the connection without an answer, at `timeout` (stretched, not early)."""
        self.assertEqual(data, b"")
        self.assertGreater(took, timeout - 0.1)
        self.assertLess(took, scaled(timeout) + scaled(1))

    def test_headers_sent_too_slowly_are_cut_off_at_the_header_timeout(self):
        server = Server("--header-timeout", 0.5)
        try:
            with connect(server.port) as s:
                s.sendall(b"GET /v1/health HTTP/1.1\r\n")
                stop = threading.Event()

                def drip():  # a slowloris client: one header line every 100 ms, never the end
                    n = 0
                    while not stop.wait(0.1):
                        try:
                            s.sendall(b"X-Drip-%d: 1\r\n" % n)
                        except OSError:
                            return
                        n += 1

                dripper = threading.Thread(target=drip)
                dripper.start()
                try:
                    took, data = until_closed(s, scaled(5))
                finally:
                    stop.set()
                    dripper.join()
            self.assert_cut_off_at(0.5, took, data)
        finally:
            server.close()

    def test_an_idle_keep_alive_connection_is_closed_at_the_idle_timeout(self):
        server = Server("--idle-timeout", 0.5)
        try:
            with connect(server.port) as s:
                s.sendall(REQUEST)
                self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
                took, data = until_closed(s, scaled(5))
            self.assert_cut_off_at(0.5, took, data)
        finally:
            server.close()

    def test_a_client_that_never_reads_its_answers_is_cut_off_at_the_header_timeout(self):
        # The same timeout bounds each write: this client pipelines requests for a 27 KB
        # document and reads nothing, so the server's write stops once the kernel's buffers are
        # full (a 4 KiB receive buffer here, and the server's send buffer).
        server = Server("--header-timeout", 0.5)
        asks = 400  # about 10 MB of answers: more than both buffers hold
        try:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.settimeout(scaled(5))
                s.connect(("127.0.0.1", server.port))
                started = time.monotonic()
                s.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: quiesce\r\n\r\n" * asks)
                deadline = time.monotonic() + scaled(5)
                while not re.search(r"^quiesce_connections_open 0$",
                                    m := server.request("GET", "/metrics", admin=True).raw, re.M):
                    self.assertLess(time.monotonic(), deadline, "the connection stayed open:\n" + m)
                    time.sleep(0.05)
                took = time.monotonic() - started
                _, data = until_closed(s, scaled(5))
            self.assertGreater(took, 0.5 - 0.1)
            self.assertLess(data.count(b"HTTP/1.1 200 OK"), asks)
        finally:
            server.close()

    def test_a_peer_that_never_answers_the_close_frame_does_not_hold_the_drain(self):
        server = Server("--close-timeout", 0.5, "--close-spread", 0)
        try:
            with connect(server.port) as s:
                key = base64.b64encode(os.urandom(16))
                s.sendall(b"GET /ws/mute HTTP/1.1\r\nHost: quiesce\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
                got = s.recv(4096)
                self.assertTrue(got.startswith(b"HTTP/1.1 101"))
                # The stream counts for the drain once registered, which is before its `hello`.
                while b'"type":"hello"' not in got:
                    got += s.recv(4096)
                # From here the peer reads nothing and answers nothing, but stays connected.
                started = time.monotonic()
                server.signal()
                code = server.wait(scaled(10))
                took = time.monotonic() - started
            self.assertEqual(code, 0)
            self.assertLess(took, scaled(0.5) + scaled(1.5), "the close timeout bounds the drain")
            stopped = server.wait_log(lambda l: l.get("msg") == "stopped", scaled(1))
            self.assertGreaterEqual(stopped["since_signal_ms"], 450)
        finally:
            server.close()


if __name__ == "__main__":
    unittest.main()
