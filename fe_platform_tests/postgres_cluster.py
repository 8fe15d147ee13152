"""A throwaway PostgreSQL cluster for integration tests: initdb, start on a free port, stop, remove.

    with PostgresCluster() as pg:
        psycopg.connect(**pg.conninfo())

The cluster lives in a temporary folder owned by `postgres` (initdb refuses to run as root, so when
the tests run as root every server command runs through `runuser -u postgres --`). It listens on
127.0.0.1 only, with its socket in the temporary folder, and requires a password over TCP.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path(os.environ.get("FE_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> bool:
    """PostgreSQL binaries are installed (and, as root, the `postgres` user exists)."""
    if not (PG_BIN / "initdb").exists():
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return False
    return True


class PostgresCluster:
    def __init__(self, database: str = "fe_platform", user: str = "fe_admin"):
        self.database = database
        self.user = user
        self.password = secrets.token_urlsafe(16)
        self.host = "127.0.0.1"
        self.port = 0
        self.root: Path | None = None
        self._started = False

    # Commands run as the server user when we are root, as ourselves otherwise.
    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        argv = [str(c) for c in cmd]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            log = self.root / "server.log" if self.root else None
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stdout}\n{done.stderr}\n{tail}")
        return done

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def start(self) -> PostgresCluster:
        self.root = Path(tempfile.mkdtemp(prefix="fe-pg-"))
        if os.geteuid() == 0:
            server = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, server.pw_uid, server.pw_gid)
        os.chmod(self.root, 0o700)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, pwd.getpwnam(SERVER_USER).pw_uid, -1)
        self._run(PG_BIN / "initdb", "-D", self.data_dir, "-U", SERVER_USER, "--pwfile", pwfile,
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")
        pwfile.unlink()
        self.port = free_port()
        options = (f"-p {self.port} -k {self.root} -c listen_addresses={self.host} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        self._run(PG_BIN / "pg_ctl", "-D", self.data_dir, "-l", self.root / "server.log", "-o", options,
                  "-w", "-t", "60", "start")
        self._started = True
        self.superuser_sql(
            f"create role \"{self.user}\" login superuser password '{self.password}'",
            f"create database \"{self.database}\" owner \"{self.user}\"",
        )
        return self

    def superuser_sql(self, *statements: str, database: str = "postgres") -> None:
        """Statements run as the bootstrap superuser over the cluster's Unix socket."""
        for sql in statements:
            self._run(PG_BIN / "psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", str(self.root), "-p",
                      str(self.port), "-U", SERVER_USER, "-d", database, "-c", sql)

    def stop(self) -> None:
        try:
            if self._started:
                self._run(PG_BIN / "pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop")
                self._started = False
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    def conninfo(self, user: str | None = None, password: str | None = None) -> dict:
        return {"host": self.host, "port": self.port, "dbname": self.database,
                "user": user or self.user, "password": password if user else self.password}

    def env(self) -> dict[str, str]:
        """The FE_POSTGRES_* settings that point the platform and dbt at this cluster."""
        return {"FE_POSTGRES_HOST": self.host, "FE_POSTGRES_PORT": str(self.port),
                "FE_POSTGRES_DATABASE": self.database, "FE_POSTGRES_USER": self.user,
                "FE_POSTGRES_PASSWORD": self.password}

    def __enter__(self) -> PostgresCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
