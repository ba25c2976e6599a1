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

BIN = "/usr/lib/postgresql/15/bin"
_names = itertools.count(1)


def available():
    return os.path.exists(f"{BIN}/initdb")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    def __init__(self):
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
        # fsync off: the tests are about what quiesce does, not about the disk under PostgreSQL.
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c max_connections=300"
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
