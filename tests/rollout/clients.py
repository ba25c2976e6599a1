"""Clients of a rolling Deployment: each submits tasks through the Service at a steady rate and
follows them over one WebSocket through the Service, reconnecting when it is closed 1012.

A submission is retried until it gets a 2xx (a retrying client); every failed attempt is counted
by kind: the HTTP status (503, 429), "refused" (the Service found the pod refusing connections),
"reset" or "timeout". The stream reconnects with ?since=<seq>&epoch=<epoch>; when the new
server answers `gap`, the client reads its unresolved tasks over HTTP at the end.
"""
import asyncio
import collections
import json
import random
import socket
import uuid

import websockets

from cluster import scaled

TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}


class Failure(Exception):
    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind


class Client:
    def __init__(self, name, service, period, body=None):
        self.name = name
        self.service = service
        self.period = period
        self.body = body  # native task body; None alternates the original and the native route
        self.accepted = {}  # task_id -> pod that answered 2xx
        self.outcomes = {}  # task_id -> (status, "live" | "replay" | "get")
        self.errors = {"submit": collections.Counter(), "stream": collections.Counter()}
        self.recovered = collections.Counter()  # attempts that failed, then succeeded on retry
        self.gave_up = 0
        self.close_codes = collections.Counter()
        self.stream_pods = []  # the pod of every hello, in order
        self.connects = []  # (pod, since asked, hello seq, last seq read) of every stream, in order
        self.connected_to = None  # the pod serving the stream now
        self.gaps = 0
        self.stopping = asyncio.Event()
        self._learned = asyncio.Event()

    # --- HTTP through the Service ---------------------------------------------------------------
    async def request(self, method, path, body=None, headers=None, timeout=None):
        """(status, headers, json body, pod) of one request on a new connection."""
        timeout = timeout or scaled(5)
        writer = None
        port = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.service.port)
                port = writer.get_extra_info("sockname")[1]
                data = json.dumps(body).encode() if body is not None else b""
                head = [f"{method} {path} HTTP/1.1", "Host: service", "Connection: close",
                        f"Content-Length: {len(data)}"]
                if body is not None:
                    head.append("Content-Type: application/json")
                head += [f"{k}: {v}" for k, v in (headers or {}).items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
                raw = await reader.read()
        except (asyncio.TimeoutError, TimeoutError):
            raise Failure("timeout")
        except OSError:
            raise Failure(self._refused_or_reset(port))
        finally:
            if writer:
                writer.close()
        if not raw:
            raise Failure(self._refused_or_reset(port))
        head, _, payload = raw.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = None
        return status, hdrs, parsed, self.service.routes.get(port, (None, None))[0]

    def _refused_or_reset(self, port):
        route = self.service.routes.get(port, (None, None))[1]
        return "refused" if route in ("refused", "no-endpoint") else "reset"

    # --- submitting ------------------------------------------------------------------------------
    async def submit_loop(self):
        n = 0
        while not self.stopping.is_set():
            await self.submit(original=self.body is None and n % 2 == 0)
            n += 1
            try:
                await asyncio.wait_for(self.stopping.wait(), self.period)
            except asyncio.TimeoutError:
                pass

    async def submit(self, original):
        key = str(uuid.uuid4())
        failed = 0
        for _ in range(200):
            try:
                if original:
                    status, hdrs, body, pod = await self.request("POST", "/v1/create-task/")
                else:
                    status, hdrs, body, pod = await self.request(
                        "POST", "/v1/tasks", self.body or {"kind": "sleep"},
                        {"Idempotency-Key": key})
            except Failure as f:
                kind = f.kind
            else:
                if status in (200, 202):
                    self.accepted[body["task_id"]] = pod
                    if failed:
                        self.recovered["submit"] += 1
                    return body["task_id"]
                kind = str(status)
            self.errors["submit"][kind] += 1
            failed += 1
            # Back off a little, then go through the Service again: it may pick another pod.
            await asyncio.sleep(random.uniform(0.02, 0.08))
        self.gave_up += 1
        return None

    # --- following -------------------------------------------------------------------------------
    async def follow(self):
        epoch, since, failed = None, None, 0
        while True:
            path = f"/ws/{self.name}"
            if since is not None:
                path += f"?since={since}&epoch={epoch}"
            wait = random.uniform(0.02, 0.08)
            port = None
            sock = socket.socket()
            try:
                # Our own socket, so the Service's record tells a refusal from a reset.
                sock.setblocking(False)
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.service.port))
                port = sock.getsockname()[1]
                async with websockets.connect(f"ws://127.0.0.1:{self.service.port}{path}", sock=sock,
                                              open_timeout=scaled(5), close_timeout=scaled(5),
                                              ping_interval=None) as ws:
                    hello = json.loads(await ws.recv())
                    self.stream_pods.append(hello["pod"])
                    self.connects.append([hello["pod"], since, hello["seq"], None])
                    self.connected_to = hello["pod"]
                    if failed:
                        self.recovered["stream"] += 1
                    failed = 0
                    replay_until = hello["seq"] if since is not None else 0
                    if hello["epoch"] != epoch:
                        epoch, since = hello["epoch"], 0 if since is not None else hello["seq"]
                    try:
                        async for message in ws:
                            f = json.loads(message)
                            if f["type"] == "task":
                                since = f["seq"]
                                if f["status"] in TERMINAL:
                                    how = "replay" if f["seq"] <= replay_until else "live"
                                    self.outcomes.setdefault(f["task_id"], (f["status"], how))
                                    self._check_learned()
                            elif f["type"] == "gap":
                                self.gaps += 1
                            elif f["type"] == "draining":
                                wait = min(f["reconnect_after_ms"] / 1000, 1.0)
                    except websockets.ConnectionClosed:
                        pass
                    finally:
                        self.connected_to = None
                        self.connects[-1][3] = since
                    self.close_codes[ws.close_code] += 1
            except websockets.InvalidStatusCode as e:
                self.errors["stream"][str(e.status_code)] += 1
                failed += 1
            except (asyncio.TimeoutError, TimeoutError):
                self.errors["stream"]["timeout"] += 1
                failed += 1
            except (OSError, websockets.InvalidHandshake, websockets.ConnectionClosed):
                self.errors["stream"][self._refused_or_reset(port)] += 1
                failed += 1
            finally:
                sock.close()
            await asyncio.sleep(wait)

    def _check_learned(self):
        # Re-judged every time: a submission still in flight when stopping was set may add a task.
        if self.stopping.is_set() and set(self.accepted) <= set(self.outcomes):
            self._learned.set()
        else:
            self._learned.clear()

    async def settle(self, timeout):
        """After submissions stopped: waits until every accepted task's outcome is known or
        `timeout` passes, then reads what is still unknown over HTTP if the stream said `gap`."""
        self._check_learned()
        try:
            await asyncio.wait_for(self._learned.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        if self.gaps:
            for tid in set(self.accepted) - set(self.outcomes):
                try:
                    status, _, body, _ = await self.request("GET", f"/v1/tasks/{tid}")
                except Failure:
                    continue
                if status == 200 and body.get("status") in TERMINAL:
                    self.outcomes[tid] = (body["status"], "get")

    def not_learned(self):
        return set(self.accepted) - set(self.outcomes)
