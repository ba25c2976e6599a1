"""Starts the real quiesce binary on free ports and talks to it over real sockets.

QUIESCE_BIN names the binary; QUIESCE_TIME_SCALE (set by the sanitizer test presets) stretches
every time bound, never removes one.
"""
import asyncio
import http.client
import json
import os
import signal
import subprocess
import tempfile
import threading
import time

import websockets

BIN = os.environ.get("QUIESCE_BIN", "build/dev/app/quiesce")
SCALE = float(os.environ.get("QUIESCE_TIME_SCALE", "1"))
SANITIZER_MARKS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:")


def scaled(seconds):
    return seconds * SCALE


class Server:
    """The server with its default store (sqlite) in a fresh data directory, or in `data_dir`
    (a restart on the same data), or with the arguments' own --store/--data-dir (memory and
    postgres have none)."""

    def __init__(self, *args, env=None, data_dir=None, wait_listening=True, host="127.0.0.1",
                 wrapper=()):
        args = [str(a) for a in args]
        self.host = host
        self._tmp = None
        store = args[args.index("--store") + 1] if "--store" in args else "sqlite"
        if data_dir is None and "--data-dir" not in args and store == "sqlite":
            self._tmp = tempfile.TemporaryDirectory(prefix="quiesce-data-")
            data_dir = self._tmp.name
        self.data_dir = data_dir
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        ports = [] if "--port" in args else ["--port", "0", "--admin-port", "0"]
        cmd = [*wrapper, BIN, "--bind", host, *ports, *args]  # wrapper: e.g. unshare
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("QUIESCE_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env, text=True)
        self.lines = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not wait_listening:
            return
        line = self.wait_log(lambda l: l.get("msg") == "listening", scaled(10))
        self.port = line["port"]
        self.admin_port = line["admin_port"]

    def _read(self):
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def logs(self):
        """The server's JSON log entries. Other lines (a library's or a sanitizer's note on the
        shared output) are not entries; sanitizer reports still fail the test in close()."""
        with self._cond:
            return [json.loads(l) for l in self.lines if l.startswith("{")]

    def wait_log(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for raw in self.lines:
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        continue
                    if pred(entry):
                        return entry
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError("log line not seen; output:\n" + "\n".join(self.lines[-30:]))
                self._cond.wait(min(left, 0.1))

    # --- HTTP -------------------------------------------------------------------------------
    def connection(self, admin=False, timeout=None):
        return http.client.HTTPConnection(self.host, self.admin_port if admin else self.port,
                                          timeout=timeout or scaled(10))

    def request(self, method, path, body=None, headers=None, admin=False):
        conn = self.connection(admin)
        try:
            return send(conn, method, path, body, headers)
        finally:
            conn.close()

    def wait_status(self, task_id, want, timeout=5):
        """Polls GET /v1/tasks/{id} until the task has status `want`; returns that response."""
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            r = self.request("GET", f"/v1/tasks/{task_id}")
            if r.json["status"] == want:
                return r
            time.sleep(0.02)
        raise AssertionError(f"task {task_id} never reached {want}: {r.json}")

    # --- WebSocket ----------------------------------------------------------------------------
    def ws_url(self, path):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{path}"

    # --- process ----------------------------------------------------------------------------
    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout):
        """SIGTERM, then the exit code once the process and its log are both finished."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        return code

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        self.proc.stdout.close()
        # Under the sanitizer presets the server reports on its own output: any report fails
        # the test that started it, whatever the test asserted.
        reports = [l for l in self.lines if any(m in l for m in SANITIZER_MARKS)]
        if self._tmp:
            self._tmp.cleanup()
        if reports:
            raise AssertionError("sanitizer report from the server:\n" + "\n".join(self.lines[-60:]))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name.lower())


def send(conn, method, path, body=None, headers=None):
    """One request on `conn` (kept open for keep-alive tests)."""
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read().decode()
    return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)


async def collect_until(ws, pred, timeout):
    """Receives JSON frames until pred(frame) holds; returns every frame received."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"frame not seen in time; got {got[-5:]}")
        frame = json.loads(await asyncio.wait_for(ws.recv(), left))
        got.append(frame)
        if pred(frame):
            return got


async def read_to_close(ws, timeout):
    """Every frame until the server closes; returns (frames, close code)."""
    frames = []
    try:
        async with asyncio.timeout(timeout):
            async for m in ws:
                frames.append(json.loads(m))
    except websockets.ConnectionClosed:
        pass
    return frames, ws.close_code

