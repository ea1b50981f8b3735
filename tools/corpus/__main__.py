"""``python -m tools.corpus --out DIR [--seed 7] [--scale 1]``: the labelled corpus as JSONL
files."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from tools.corpus.generate import FAMILIES, generate, label_record


def write_corpus(out: Path, seed: int = 7, scale: int = 1) -> Counter[str]:
    """Writes traces.native.jsonl and labels.jsonl, line for line in the same order."""
    out.mkdir(parents=True, exist_ok=True)
    corpus = generate(seed=seed, scale=scale)
    # Explicit encoding and newline: the same seed must give the same bytes on every platform.
    with (
        (out / "traces.native.jsonl").open("w", encoding="utf-8", newline="\n") as traces,
        (out / "labels.jsonl").open("w", encoding="utf-8", newline="\n") as labels,
    ):
        for item in corpus:
            traces.write(item.trace.model_dump_json() + "\n")
            labels.write(json.dumps(label_record(item)) + "\n")
    return Counter(item.labels.family for item in corpus)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.corpus", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSONL files")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=int, default=1, help="multiplies every occurrence count")
    args = parser.parse_args(argv)
    counts = write_corpus(args.out, args.seed, args.scale)
    for family in FAMILIES:
        print(f"{family:<22} {counts[family]:>5}")
    print(f"{'total':<22} {sum(counts.values()):>5}  -> {args.out}")


if __name__ == "__main__":
    main()
