"""Processes the harness starts itself (pass-through hops, profilers), and the ones it
freezes, tracked so that every one of them is stopped or resumed on any exit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from promoter.kafka_local import REPO_ROOT, stop_process_group


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: dict[str, subprocess.Popen[bytes]] = {}
        self.frozen: set[int] = set()

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> int:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                env={**os.environ, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started[name] = process
        return process.pid

    def python(self, name: str, module_args: list[str]) -> int:
        return self.start(name, [sys.executable, "-m", *module_args], env={"PYTHONUNBUFFERED": "1"})

    def stop(self, name: str, timeout_s: float = 15.0) -> None:
        process = self.started.pop(name, None)
        if process is None:
            return
        self.thaw([process.pid])
        stop_process_group(process.pid, timeout_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1)

    def check_running(self, names: Iterable[str]) -> None:
        """Raises when one of the named processes has exited (see its log)."""
        for name in names:
            process = self.started.get(name)
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}; see {self.log_dir / (name + '.log')}"
                )

    def stop_all(self) -> None:
        self.thaw(list(self.frozen))
        for name in list(self.started):
            self.stop(name)

    # -- freezing: a stage process that must not compete for the CPU -----------------
    def freeze(self, pids: Iterable[int]) -> None:
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGSTOP)
                self.frozen.add(pid)
            except ProcessLookupError:
                pass

    def thaw(self, pids: Iterable[int]) -> None:
        for pid in list(pids):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGCONT)
            self.frozen.discard(pid)


@dataclass
class RssSampler:
    """Samples the resident set size of named processes (with their children) every
    ``interval_s`` in a background thread; keeps the peak and the last value."""

    pids: dict[str, int]
    interval_s: float = 0.25
    peak: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        for name, pid in self.pids.items():
            rss = tree_rss(pid)
            if rss is None:
                continue
            self.last[name] = rss
            self.peak[name] = max(self.peak.get(name, 0), rss)


def tree_rss(pid: int) -> int | None:
    try:
        root = psutil.Process(pid)
        total = int(root.memory_info().rss)
        for child in root.children(recursive=True):
            try:
                total += int(child.memory_info().rss)
            except psutil.Error:
                continue
        return total
    except psutil.Error:
        return None


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, with its live children and
    the children it has reaped; None when the process is gone."""
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            try:
                ct = child.cpu_times()
                total += ct.user + ct.system
            except psutil.Error:
                continue
        return float(total)
    except psutil.Error:
        return None


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process tree (the ones still running)."""
    out = {}
    for name, pid in pids.items():
        seconds = tree_cpu_seconds(pid)
        if seconds is not None:
            out[name] = seconds
    return out


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each process tree used between two snapshots."""
    return {name: after[name] - before[name] for name in before if name in after}
