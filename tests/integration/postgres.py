"""A throwaway PostgreSQL 15 cluster for the tests of --store postgres: initdb in a temporary
directory, loopback only, started with pg_ctl and stopped by its postmaster's PID. As root the
cluster runs as the postgres user (initdb refuses root)."""
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import Server, scaled

BIN = "/usr/lib/postgresql/15/bin"
_names = itertools.count(1)


def available():
    return os.path.exists(f"{BIN}/initdb")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    def __init__(self, fsync=False):
        self.fsync = fsync
        self.root = os.geteuid() == 0
        self.dir = tempfile.mkdtemp(prefix="quiesce-pg-")
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self._as_owner(f"{BIN}/initdb", "-D", self.data, "-U", "quiesce", "--auth=trust", "-E", "UTF8")
        self.start()

    def _as_owner(self, *cmd):
        prefix = ["runuser", "-u", "postgres", "--"] if self.root else []
        subprocess.run(prefix + list(cmd), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self):
        # fsync off: the tests are about what quiesce does, not about the disk under PostgreSQL
        # (the bench turns it on where a commit's flush is what it measures).
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c max_connections=300 "
                f"-c fsync={'on' if self.fsync else 'off'}")
        self._as_owner(f"{BIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w",
                       "-o", opts, "start")
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())

    def stop(self):
        """Fast shutdown (SIGINT to the postmaster: sessions are ended), waited for."""
        os.kill(self.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError("PostgreSQL did not stop")

    def url(self, db="postgres"):
        return f"postgresql://quiesce@127.0.0.1:{self.port}/{db}"

    def psql(self, sql, db="postgres"):
        out = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.url(db), "-c", sql],
                             check=True, capture_output=True, text=True)
        return [line.split("|") for line in out.stdout.splitlines() if line]

    def new_database(self):
        """A fresh database; returns its URL."""
        name = f"t{os.getpid()}_{next(_names)}"
        self.psql(f"CREATE DATABASE {name}")
        return name

    def close(self):
        try:
            self.stop()
        except (ProcessLookupError, AssertionError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


_cluster = None


def cluster():
    """This test process's cluster, started on first use (close_cluster() in tearDownModule)."""
    global _cluster
    if _cluster is None:
        if not available():
            raise unittest.SkipTest("postgresql-15 is not installed (scripts/install-deps.sh test)")
        _cluster = Postgres()
    return _cluster


def close_cluster():
    if _cluster:
        _cluster.close()


LEASE = max(2.0, scaled(1))  # seconds; a rescue comes within this plus a heartbeat


def final(r):
    return r.json["status"] in ("succeeded", "failed", "cancelled", "interrupted")


class ReplicaCase(unittest.TestCase):
    """Each test gets a fresh database and starts replicas of the real binary on it."""

    def setUp(self):
        self.db = cluster().new_database()
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            if os.environ.get("QUIESCE_DUMP"):
                print("\n".join(s.lines[-40:]))
            s.close()

    def replica(self, *args, wait_listening=True, lease=LEASE):
        s = Server("--store", "postgres", "--database-url", cluster().url(self.db), "--lease-seconds", lease,
                   "--log-level", "debug", *args, wait_listening=wait_listening)
        self.servers.append(s)
        return s

    def replicas(self, n, *args):
        """n replicas started at once on an empty database: they create the schema in turns."""
        started = [self.replica(*args, wait_listening=False) for _ in range(n)]
        for s in started:
            line = s.wait_log(lambda l: l.get("msg") == "listening", scaled(15))
            s.port, s.admin_port = line["port"], line["admin_port"]
        return started

    def post(self, server, body=None, headers=None):
        r = server.request("POST", "/v1/tasks", body or {"seconds": 0.2}, headers)
        self.assertEqual(r.status, 202, r.raw)
        return r.json["task_id"]

    def wait_final(self, server, task_id, timeout):
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            r = server.request("GET", f"/v1/tasks/{task_id}")
            if r.status == 200 and final(r):
                return r.json
            time.sleep(0.05)
        raise AssertionError(f"task {task_id} did not end: {r.status} {r.raw}")
