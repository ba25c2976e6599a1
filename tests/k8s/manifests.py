"""Reads k8s/ the way the kubelet would: the Deployment's container, its environment, its probes."""
import os
import re
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import BIN  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(ROOT, "k8s")


def load(name):
    with open(os.path.join(K8S, name)) as f:
        return yaml.safe_load(f)


def load_all(name):
    """Every object of a multi-document file, by kind."""
    with open(os.path.join(K8S, name)) as f:
        return {o["kind"]: o for o in yaml.safe_load_all(f) if o}


def deployment():
    return load("deployment.yaml")


def container(dep):
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def literal_env(c):
    """The environment variables given as values (the downward API ones are the kubelet's)."""
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


def port_number(c, port):
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (p,) = [p["containerPort"] for p in c["ports"] if p.get("name") == port]
    return p


def prestop_seconds(c):
    """The preStop sleep: the native action, or `exec: sleep N` as on clusters before 1.30."""
    hook = c.get("lifecycle", {}).get("preStop", {})
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = hook.get("exec", {}).get("command", [])
    if command[:1] == ["sleep"]:
        return float(command[1])
    return 0.0


def server_defaults():
    """Every knob's default as the binary prints it in --help: {'shutdown-timeout': '25', ...}."""
    text = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"--([a-z-]+) arg \(=([^)]*)\)", text))


def effective(c, knob, defaults):
    """The value the server runs with in this container: its QUIESCE_* variable, else its default."""
    return literal_env(c).get("QUIESCE_" + knob.upper().replace("-", "_"), defaults[knob])


def cpu_cores(quantity):
    """A CPU quantity ("1", "1500m") in whole cores, rounded up as resourceFieldRef with divisor 1."""
    q = str(quantity)
    millis = int(q[:-1]) if q.endswith("m") else int(float(q) * 1000)
    return -(-millis // 1000)


def kubelet_env(c, pod="quiesce-test", namespace="default"):
    """The container's environment as the kubelet fills it in (downward API included)."""
    env = {}
    for e in c.get("env", []):
        source = e.get("valueFrom", {})
        if "value" in e:
            env[e["name"]] = e["value"]
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[e["name"]] = pod
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[e["name"]] = namespace
        elif source.get("resourceFieldRef", {}).get("resource") == "limits.cpu":
            env[e["name"]] = str(cpu_cores(c["resources"]["limits"]["cpu"]))
        else:
            raise AssertionError(f"no kubelet rule in this test for env {e}")
    return env
