"""The image and the Deployment, run for real: podman builds the Containerfile, `podman kube play`
runs the Deployment's pod, a WebSocket client follows tasks submitted over HTTP, and the pod is
stopped with SIGTERM to quiesce as PID 1. Skipped, with the reason, only where this machine cannot
run a container at all; never passes without running one.

Podman needs a generated copy of the Deployment (written next to the test's output):
- `hostPort`s on 127.0.0.1, because `kube play` publishes only those (a cluster has the Service);
- `KUBE_POD_NAMESPACE` as a value, because podman 4.3 has no `metadata.namespace` field ref;
- one replica, the test's image tag and a name of its own.
Podman 4.3's `kube down` SIGKILLs containers (podman#22397, fixed in 5.1), and its `pod stop` stops
the pod's infra container alongside, which tears the published ports down under open connections.
So, as the kubelet does, the app container is stopped first, keeping the pod's network:
`podman stop --time <terminationGracePeriodSeconds>` (SIGTERM, SIGKILL at the grace period);
`kube down` then removes the pod."""
import asyncio
import json
import os
import socket
import subprocess
import tempfile
import time
import unittest

import websockets
import yaml

import manifests as m
from harness import collect_until, scaled

IMAGE = "localhost/quiesce:test"
TASKS = 6
TASK_SECONDS = 2


def podman(*args, timeout=60, check=True):
    r = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {r.returncode}\n{r.stderr[-2000:]}")
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def skip_unless_containers_run():
    """The base image, and one container run from it: the reason to skip if either is impossible."""
    if subprocess.run(["sh", "-c", "command -v podman"], capture_output=True).returncode != 0:
        raise unittest.SkipTest("podman is not installed (scripts/install-deps.sh test installs it as root)")
    base = os.environ.get("QUIESCE_BASE_IMAGE")
    if not base:
        r = subprocess.run([os.path.join(m.ROOT, "scripts", "container-base.sh")],
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise unittest.SkipTest("no base image: scripts/container-base.sh failed: " + r.stderr.strip()[-500:])
        base = r.stdout.strip()
    r = podman("run", "--rm", base, "true", check=False)
    if r.returncode != 0:
        raise unittest.SkipTest("this machine cannot run containers: " + r.stderr.strip()[-500:])
    return base


def podman_copy(pod_name, public, admin):
    dep = m.deployment()
    dep["metadata"]["name"] = pod_name
    dep["spec"]["replicas"] = 1
    c = m.container(dep)
    c["image"] = IMAGE
    for p in c["ports"]:
        p["hostIP"] = "127.0.0.1"
        p["hostPort"] = public if p["name"] == "http" else admin
    for e in c["env"]:
        if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            e.pop("valueFrom")
            e["value"] = "podman"
    return dep


class Container(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        base = skip_unless_containers_run()
        started = time.monotonic()
        podman("build", "--build-arg", f"BUILD_IMAGE={base}", "--build-arg", f"BASE_IMAGE={base}",
               "-t", IMAGE, "-f", os.path.join(m.ROOT, "Containerfile"), m.ROOT, timeout=1800)
        cls.build_s = time.monotonic() - started
        cls.size_mb = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout) / 1e6
        cls.base_mb = int(podman("image", "inspect", "--format", "{{.Size}}", base).stdout) / 1e6

    def setUp(self):
        self.public, self.admin = free_port(), free_port()
        name = f"quiesce-ct-{os.getpid()}"
        self.pod, self.container = f"{name}-pod-0", f"{name}-pod-0-quiesce"
        self.dep = podman_copy(name, self.public, self.admin)
        self.out = tempfile.mkdtemp(prefix="quiesce-container-")
        self.kube_file = os.path.join(self.out, "deployment.podman.yaml")
        with open(self.kube_file, "w") as f:
            yaml.safe_dump(self.dep, f)
        podman("kube", "play", self.kube_file)
        self.addCleanup(podman, "kube", "down", self.kube_file, check=False)

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run(["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{self.admin}/readyz"])
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError("/readyz never answered:\n" + podman("logs", self.container, check=False).stdout)
            time.sleep(0.05)  # the kubelet polls too; there is no event to wait on across podman

    def test_sigterm_to_pid_1_drains_every_task_and_exits_0(self):
        self.wait_ready(scaled(30))
        # quiesce itself is PID 1 in the container's PID namespace: no shell in between.
        host_pid = podman("inspect", "--format", "{{.State.Pid}}", self.container).stdout.strip()
        with open(f"/proc/{host_pid}/status") as f:
            self.assertEqual(next(l for l in f if l.startswith("NSpid:")).split()[-1], "1")
        with open(f"/proc/{host_pid}/cmdline") as f:
            self.assertEqual(f.read().split("\0")[0], "/usr/local/bin/quiesce")

        grace = self.dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        frames, code, stop, stop_s = asyncio.run(self.follow_tasks_through_a_stop(grace))

        self.assertEqual(stop.returncode, 0, stop.stderr)
        exit_code = int(podman("inspect", "--format", "{{.State.ExitCode}}", self.container).stdout)
        self.assertEqual(exit_code, 0)
        self.assertEqual(code, 1012)
        hello = frames[0]
        self.assertEqual((hello["type"], hello["pod"], hello["namespace"]), ("hello", self.pod, "podman"))
        self.assertEqual(frames[-1]["type"], "draining")
        succeeded = {f["task_id"] for f in frames if f.get("type") == "task" and f["status"] == "succeeded"}
        self.assertEqual(succeeded, self.task_ids, "every accepted task finished and was announced")

        raw = podman("logs", self.container).stdout.splitlines()
        logs = [json.loads(line) for line in raw]  # every line is JSON, or this raises
        self.assertTrue(all({"ts", "level", "msg"} <= line.keys() for line in logs))
        by_msg = {line["msg"]: line for line in logs}
        self.assertEqual(by_msg["drain started"]["signal"], "SIGTERM")
        self.assertEqual(by_msg["stopped"]["exit_code"], 0)
        report = {
            "image_mb": round(self.size_mb, 1), "base_image_mb": round(self.base_mb, 1),
            "build_s": round(self.build_s, 1), "tasks": len(self.task_ids),
            "running_at_signal": by_msg["drain started"]["running"],
            "tasks_finished_ms": by_msg["tasks finished"]["since_signal_ms"],
            "stopped_ms": by_msg["stopped"]["since_signal_ms"], "pod_stop_wall_s": round(stop_s, 2),
            "close_code": code, "exit_code": exit_code, "log_lines": len(logs),
        }
        print("CONTAINER " + json.dumps(report), flush=True)
        with open(os.path.join(self.out, "report.json"), "w") as f:
            json.dump(report, f)

    async def follow_tasks_through_a_stop(self, grace):
        async with websockets.connect(f"ws://127.0.0.1:{self.public}/ws/container-test") as ws:
            frames = [json.loads(await asyncio.wait_for(ws.recv(), scaled(10)))]
            self.task_ids = set(await asyncio.gather(*(self.submit() for _ in range(TASKS))))
            frames += await collect_until(
                ws, lambda f: f.get("type") == "task" and f["status"] == "running"
                and f["task_id"] in self.task_ids, scaled(10))
            started = time.monotonic()
            stop = await asyncio.create_subprocess_exec(
                "podman", "stop", "--time", str(grace), self.container,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            frames += await collect_until(ws, lambda f: f.get("type") == "draining",
                                          scaled(TASK_SECONDS + 20))
            with self.assertRaises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), scaled(10))
            code = ws.close_code
            _, err = await asyncio.wait_for(stop.communicate(), grace + 30)
            stopped = subprocess.CompletedProcess(stop, stop.returncode, "", err.decode())
            return frames, code, stopped, time.monotonic() - started

    async def submit(self):
        body = json.dumps({"kind": "sleep", "seconds": TASK_SECONDS})
        proc = await asyncio.create_subprocess_exec(
            "curl", "-s", "-XPOST", "-H", "Content-Type: application/json", "-d", body,
            "-w", "\n%{http_code}", f"http://127.0.0.1:{self.public}/v1/tasks",
            stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        text, status = out.decode().rsplit("\n", 1)
        self.assertEqual(status, "202", text)
        return json.loads(text)["task_id"]


if __name__ == "__main__":
    unittest.main()
