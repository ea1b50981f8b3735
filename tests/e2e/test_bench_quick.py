"""`make bench`'s short slice: the benchmark's smoke run (`--quick`) on a broker and database
of its own, every section of it. A section that fails is reported in the results rather than
stopping the run, so the test reads the results: each section answered, each stage measured
alone, and each profiling fix timed with the same verdicts before and after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.topics import PIPELINE_INPUT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_the_quick_benchmark_runs_every_section_without_an_error(tmp_path: Path) -> None:
    out, results_path = tmp_path / "BENCHMARKS.md", tmp_path / "bench.json"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.bench",
            "--quick",
            "--out",
            str(out),
            "--json",
            str(results_path),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    results = json.loads(results_path.read_text())
    assert results["errors"] == [], finished.stderr[-2000:]
    assert finished.returncode == 0, finished.stderr[-2000:]
    pipeline = results["pipeline"]
    assert pipeline["end_to_end"]["traces_per_s"]["median"] > 0
    assert set(pipeline["isolation"]) == set(PIPELINE_INPUT)
    assert all(s["traces_per_s"]["median"] > 0 for s in pipeline["isolation"].values())
    fixes = {f["fix"]: f for f in pipeline["fixes"]}
    assert "phone matcher only where a number fits" in fixes
    assert all(f["speedup"] and f["speedup"] > 0 for f in fixes.values())
    assert "## Closing note" in out.read_text()
