"""A throwaway PostgreSQL cluster from Debian's server binaries, for the storage tests and benchmarks.

`initdb` in a temporary directory with password (scram) authentication, `pg_ctl start` on a free
port bound to 127.0.0.1 with its socket in that directory, removed on exit. The server refuses to
run as root, so under root (CI) it runs as the `postgres` user through `runuser`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PASSWORD = "s3cret"


def server_binaries() -> Path | None:
    """The newest installed /usr/lib/postgresql/<version>/bin, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def throwaway_postgres(bindir: Path) -> Iterator[str]:
    """Yield postgresql://postgres:PASSWORD@127.0.0.1:PORT/postgres; stop and delete the cluster after."""
    root = Path(tempfile.mkdtemp(prefix="tunesmith-pg-"))
    as_user: list[str] = []
    (root / "pw").write_text(PASSWORD)
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        for path in (root, root / "pw"):
            shutil.chown(path, "postgres")
    data, port = root / "data", free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={root / 'pw'}")
    options = f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=50 -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        yield f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
