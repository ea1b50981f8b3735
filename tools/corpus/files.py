"""The demo corpus as files `promote send` reads: native JSONL and OTLP JSON, with labels."""

from __future__ import annotations

import json
from pathlib import Path

from tools.corpus.generate import generate, label_record
from tools.corpus.otlp import CONVENTIONS, to_otlp_json


def write_demo_files(folder: Path, seed: int = 7, scale: int = 1) -> list[Path]:
    """Every other trace goes out as OTLP JSON (rotating conventions), the rest native."""
    folder.mkdir(parents=True, exist_ok=True)
    native = folder / "traces.native.jsonl"
    otlp = folder / "traces.otlp.jsonl"
    labels = folder / "labels.jsonl"
    with native.open("w") as n, otlp.open("w") as o, labels.open("w") as lab:
        for i, item in enumerate(generate(seed=seed, scale=scale)):
            if i % 2:
                convention = CONVENTIONS[(i // 2) % len(CONVENTIONS)]
                o.write(json.dumps(to_otlp_json(item.trace, convention)) + "\n")
            else:
                n.write(item.trace.model_dump_json() + "\n")
            lab.write(json.dumps(label_record(item)) + "\n")
    return [native, otlp]
