"""The real corpora as OTLP JSON files: ``traces.jsonl`` (one ``ExportTraceServiceRequest``
holding exactly one trace per line) and ``labels.jsonl`` (the ground truth, line for line),
both ordered by trace start time."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from tools.corpus.real.model import ConvertedRun, Run
from tools.corpus.real.otlp import convert
from tools.corpus.real.tau2 import read_tau2
from tools.corpus.real.wiki import read_wiki

Corpus = Literal["tau2", "wiki"]
CORPORA: tuple[Corpus, ...] = ("tau2", "wiki")
# Folder names under /work/shared/corpora-like roots.
SOURCE_DIRS: dict[Corpus, str] = {"tau2": "tau2-retail", "wiki": "wiki-search"}


def _converted(runs: Iterable[Run], seed: int, limit: int | None) -> list[ConvertedRun]:
    ordered = sorted(runs, key=lambda r: (r.start, r.run_id))
    if limit is not None:
        ordered = ordered[:limit]
    return [convert(run, seed) for run in ordered]


def convert_tau2(src: Path, seed: int = 0, limit: int | None = None) -> list[ConvertedRun]:
    return _converted(read_tau2(Path(src), seed), seed, limit)


def convert_wiki(src: Path, seed: int = 0, limit: int | None = None) -> list[ConvertedRun]:
    return _converted(read_wiki(Path(src), seed), seed, limit)


def convert_corpus(
    corpus: Corpus, src: Path, seed: int = 0, limit: int | None = None
) -> list[ConvertedRun]:
    if corpus == "tau2":
        return convert_tau2(src, seed, limit)
    if corpus == "wiki":
        return convert_wiki(src, seed, limit)
    raise ValueError(f"unknown corpus {corpus!r}; expected one of {CORPORA}")


def write_converted(
    runs: Iterable[ConvertedRun], out: Path, traces_name: str = "traces.jsonl"
) -> int:
    """Writes ``traces_name`` and ``labels.jsonl`` under ``out``; returns the run count."""
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    with (
        (out / traces_name).open("w", encoding="utf-8", newline="\n") as traces,
        (out / "labels.jsonl").open("w", encoding="utf-8", newline="\n") as labels,
    ):
        for converted in sorted(runs, key=lambda c: (c.run.start, c.run.run_id)):
            traces.write(json.dumps(converted.document, ensure_ascii=False) + "\n")
            labels.write(json.dumps(converted.label(), ensure_ascii=False) + "\n")
            count += 1
    return count
