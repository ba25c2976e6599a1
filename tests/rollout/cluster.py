"""The parts Kubernetes plays in a rollout, on loopback: a kubelet per pod and a Service.

A Pod is one real quiesce process. Its kubelet probes /readyz and /healthz on the admin port
every probe period and, on termination, waits the preStop sleep, sends SIGTERM and sends SIGKILL
when the grace period runs out.

The Service is a TCP proxy. It sends each *new* connection to a random pod (as kube-proxy's iptables mode does) in its
endpoint list, and it learns of readiness changes only after a propagation lag, as kube-proxy
does: that lag is the window in which traffic still reaches a pod that has begun to drain.
It records which pod each client connection reached, keyed by the client's local port.
"""
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time

# The binary, the time scale of the sanitizer presets and the sanitizer report marks are the
# integration harness's.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import BIN, SANITIZER_MARKS, SCALE, scaled  # noqa: E402

NAMESPACE = "rollout"
PROBE_TIMEOUT = 1.0 * SCALE  # Kubernetes' default timeoutSeconds

async def http_get(port, path, timeout):
    """Status code of GET path on 127.0.0.1:port, or None if it could not be asked."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n".encode())
                status_line = await reader.readline()
                return int(status_line.split()[1])
            finally:
                writer.close()
    except (OSError, asyncio.TimeoutError, ValueError, IndexError):
        return None


class Pod:
    """`data_dir`: the pod's volume (an emptyDir lives and dies with its pod; a container
    restart or a StatefulSet's PersistentVolumeClaim hands it to the next process)."""

    def __init__(self, name, args, probe_period, on_ready_change, data_dir=None):
        self.name = name
        self.args = [str(a) for a in args]
        self._volume = None
        if data_dir is None and "--store" not in self.args:
            self._volume = tempfile.TemporaryDirectory(prefix=f"{name}-data-")
            data_dir = self._volume.name
        self.data_dir = data_dir
        if data_dir is not None:
            self.args += ["--data-dir", data_dir]
        self.probe_period = probe_period
        self.on_ready_change = on_ready_change
        self.lines = []
        self.ready = False
        self.terminating = False
        self.exit_code = None
        self.drain_seconds = None  # SIGTERM to exit
        self.killed = False  # SIGKILL, by the grace period or by a crash scenario
        self.liveness = []  # (time, answered 200) of every liveness probe
        self.exit_path_at = None  # when the pod logged that it is about to exit
        self._listening = asyncio.get_running_loop().create_future()

    async def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUIESCE_")}
        env.update(KUBE_POD_NAME=self.name, KUBE_POD_NAMESPACE=NAMESPACE)
        self.proc = await asyncio.create_subprocess_exec(
            BIN, "--bind", "127.0.0.1", "--port", "0", "--admin-port", "0", "--log-level", "debug",
            *self.args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read())
        line = await asyncio.wait_for(asyncio.shield(self._listening), scaled(10))
        self.port, self.admin_port = line["port"], line["admin_port"]
        self._prober = asyncio.create_task(self._probe())

    async def _read(self):
        async for raw in self.proc.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(text)
            if self.exit_path_at is None and ('"streams closed"' in text or '"drain forced"' in text):
                self.exit_path_at = time.monotonic()
            if not self._listening.done() and '"listening"' in text:
                self._listening.set_result(json.loads(text))
        if not self._listening.done():
            self._listening.set_exception(AssertionError(f"{self.name} never listened: {self.lines[-20:]}"))

    async def _probe(self):
        # The kubelet's readiness probe, and its liveness probe (judged in liveness_failures).
        while self.proc.returncode is None:
            ready = await http_get(self.admin_port, "/readyz", PROBE_TIMEOUT) == 200
            alive = await http_get(self.admin_port, "/healthz", PROBE_TIMEOUT) == 200
            self.liveness.append((time.monotonic(), alive))
            if ready != self.ready:
                self.ready = ready
                self.on_ready_change()
            await asyncio.sleep(self.probe_period)
        self.ready = False
        self.on_ready_change()

    def liveness_failures(self):
        """Failed liveness probes before the pod entered its exit path, where its admin port
        closes (and where a sanitizer's exit-time report may keep the process alive a while).
        /healthz must answer all through a drain: Kubernetes must not restart a draining pod.
        The slack covers our reading the exit line a moment after the refusal it precedes."""
        if self.exit_path_at is None:
            return sum(not alive for _, alive in self.liveness)
        return sum(not alive for at, alive in self.liveness if at < self.exit_path_at - 0.05 * SCALE)

    async def wait_ready(self, timeout):
        async with asyncio.timeout(timeout):
            while not self.ready:
                await asyncio.sleep(self.probe_period / 2)

    async def terminate(self, prestop, grace):
        """What the kubelet does when the pod is deleted; returns the exit code."""
        self.terminating = True
        self.on_ready_change()  # the endpoints controller drops a terminating pod at once
        if prestop:
            await asyncio.sleep(prestop)
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), max(grace - prestop, 0))
        except asyncio.TimeoutError:
            self.killed = True
            self.proc.kill()
            await self.proc.wait()
        self.drain_seconds = time.monotonic() - start
        await self._reader
        self.exit_code = self.proc.returncode
        return self.exit_code

    async def crash(self):
        self.killed = True
        self.terminating = True
        self.on_ready_change()
        self.proc.kill()
        await self.proc.wait()
        await self._reader
        self.exit_code = self.proc.returncode

    def logs(self):
        out = []
        for raw in self.lines:
            try:
                out.append(json.loads(raw))
            except ValueError:
                pass
        return out

    def ended_tasks(self):
        """task_id -> final status, from the pod's own log: the ground truth for 'lost'."""
        return {l["task_id"]: l["status"] for l in self.logs() if l.get("msg") == "task ended"}

    def sanitizer_reports(self):
        """Each report whole (from its first line to its SUMMARY), so that a failure shows it."""
        out, inside = [], False
        for line in self.lines:
            if any(m in line for m in SANITIZER_MARKS):
                inside = True
            if inside:
                out.append(line)
                inside = not line.startswith("SUMMARY:")
        return out


class Service:
    def __init__(self, lag):
        self.lag = lag
        self.pods = []  # every pod the controller knows of
        self.endpoints = []  # what the proxy routes to: the controller's view, `lag` late
        self.routes = {}  # client local port -> (pod name, "ok" | "refused" | "no-endpoint")

    async def start(self):
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def add(self, pod):
        self.pods.append(pod)

    def readiness_changed(self):
        view = [p for p in self.pods if p.ready and not p.terminating]
        asyncio.get_running_loop().call_later(self.lag, self._apply, view)

    def _apply(self, view):
        self.endpoints = view

    async def _accept(self, client_reader, client_writer):
        client_port = client_writer.get_extra_info("peername")[1]
        if not self.endpoints:
            self.routes[client_port] = (None, "no-endpoint")
            client_writer.transport.abort()
            return
        pod = random.choice(self.endpoints)  # kube-proxy's iptables mode picks at random
        try:
            pod_reader, pod_writer = await asyncio.open_connection("127.0.0.1", pod.port)
        except OSError:
            # kube-proxy's DNAT would show the client the pod's refusal; a reset is closest.
            self.routes[client_port] = (pod.name, "refused")
            client_writer.transport.abort()
            return
        self.routes[client_port] = (pod.name, "ok")
        await asyncio.gather(self._pipe(client_reader, pod_writer, client_writer),
                             self._pipe(pod_reader, client_writer, pod_writer))
        for w in (pod_writer, client_writer):
            w.close()

    @staticmethod
    async def _pipe(reader, writer, source):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            # A reset on one side is a reset on the other.
            writer.transport.abort()
            source.transport.abort()

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()
