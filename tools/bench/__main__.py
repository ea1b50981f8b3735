"""``python -m tools.bench [--quick] [--out BENCHMARKS.md] [--json bench.json]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.bench.runner import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: one repetition, small corpus, 10k patterns (< 2 min)",
    )
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--json", dest="json_out", type=Path, default=Path("bench.json"))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state folder for the broker, database and logs (kept)",
    )
    parser.add_argument(
        "--keep-state", action="store_true", help="keep the temporary state folder and its logs"
    )
    args = parser.parse_args(argv)
    command = "python -m tools.bench" + (" --quick" if args.quick else "")
    return run(args.quick, args.out, args.json_out, args.state_dir, args.keep_state, command)


if __name__ == "__main__":
    sys.exit(main())
