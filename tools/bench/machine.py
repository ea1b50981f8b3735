"""What the figures were measured on: cores, memory, load, and every version involved."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

import psutil

from promoter.kafka_local import kafka_version

PACKAGES = (
    "aiokafka",
    "faststream",
    "pydantic",
    "asyncpg",
    "uvloop",
    "presidio-analyzer",
    "google-re2",
    "hyperscan",
    "py-spy",
)


def java_version() -> str:
    try:
        done = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def describe() -> dict[str, Any]:
    memory = psutil.virtual_memory()
    return {
        "cpu_model": cpu_model(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory.total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "java": java_version(),
        "kafka": kafka_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "load_average_at_start": load_average(),
    }
