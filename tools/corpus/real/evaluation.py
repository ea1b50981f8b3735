"""``make eval``: both labelled corpora through the real stack, figures to EVALUATION.md.

Per corpus: convert every run (or take the committed slice, ``--quick``), start a fresh stack
in a temporary state folder, send, wait, read the facts back, stop the stack, and compute the
figures beside the baselines (``tools.corpus.real.metrics``).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from promoter.kafka_local import REPO_ROOT
from tools.corpus.real.convert import CORPORA, SOURCE_DIRS, convert_corpus
from tools.corpus.real.metrics import Item, evaluate
from tools.corpus.real.model import ConvertedRun
from tools.corpus.real.readback import read_back
from tools.corpus.real.slice import DATA_DIR, read_slice
from tools.corpus.real.stack import on_fresh_stack
from tools.scripts.eval_trends import slow_failure_markdown
from tools.scripts.sweep_real import sweep, threshold_choice_markdown

DEFAULT_CORPORA = REPO_ROOT.parent / "shared" / "corpora"


def item_of(converted: ConvertedRun) -> Item:
    """From the converter's neutral run: the user turns and tool names the baselines read."""
    run = converted.run
    return Item(
        trace_id=converted.trace_id,
        task=run.task,
        outcome=run.outcome,
        start_time=run.start.isoformat(),
        user_turns=tuple(run.user_turns()),
        tool_names=tuple(run.tool_names()),
    )


def item_from_document(document: dict[str, Any], label: dict[str, Any]) -> Item:
    """From a committed document (the slice has no neutral runs): the converter's own read-back."""
    view = read_back(document)
    if view.trace_id != label["trace_id"]:
        raise ValueError(f"document {view.trace_id} does not match label {label['trace_id']}")
    return Item(
        trace_id=label["trace_id"],
        task=str(label["task"]),
        outcome=label["outcome"],
        start_time=label["start_time"],
        user_turns=view.user_turns,
        tool_names=view.tool_names,
    )


def inputs(
    quick: bool, corpora: Path, seed: int
) -> dict[str, tuple[list[dict[str, Any]], list[Item]]]:
    """Per corpus: the OTLP JSON documents to send and the evaluation items, in start order."""
    out: dict[str, tuple[list[dict[str, Any]], list[Item]]] = {}
    if quick:
        for document, label in read_slice(DATA_DIR):
            documents, items = out.setdefault(label["corpus"], ([], []))
            documents.append(document)
            items.append(item_from_document(document, label))
        return {c: out[c] for c in CORPORA if c in out}
    for corpus in CORPORA:
        converted = convert_corpus(corpus, corpora / SOURCE_DIRS[corpus], seed=seed)
        out[corpus] = ([c.document for c in converted], [item_of(c) for c in converted])
    return out


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def run_evaluation(
    *,
    quick: bool,
    corpora: Path = DEFAULT_CORPORA,
    seed: int = 0,
    timeout_s: float = 900.0,
    argv: Sequence[str] = (),
) -> dict[str, Any]:
    started = time.monotonic()
    commit = _git("rev-parse", "HEAD").strip() or "unknown"
    uncommitted = sorted(
        line[3:].strip() for line in _git("status", "--porcelain").splitlines() if line.strip()
    )
    report: dict[str, Any] = {
        "meta": {
            "command": "python -m tools.corpus.real " + shlex.join(argv),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit,
            "uncommitted": uncommitted,
            "input": (
                f"the committed slice ({DATA_DIR.relative_to(REPO_ROOT)})"
                if quick
                else f"the full corpora in {corpora}"
            ),
            "seed": seed,
            "quick": quick,
        },
        "corpora": {},
    }
    for corpus, (documents, items) in inputs(quick, corpora, seed).items():
        with tempfile.TemporaryDirectory(prefix=f"eval-{corpus}-") as state:
            facts = on_fresh_stack(
                documents, [i.trace_id for i in items], Path(state), timeout_s=timeout_s
            )
        report["corpora"][corpus] = evaluate(items, facts)
        print(f"{corpus}: {len(items)} runs evaluated", file=sys.stderr)
        for stage, line in facts.exited_stages.items():
            print(f"{corpus}: stage {stage} exited: {line}", file=sys.stderr)
    if not quick:
        report["threshold_choice"] = threshold_choice_markdown(sweep(corpora))
        report["slow_failure"] = slow_failure_markdown(corpora)
    report["meta"]["seconds"] = round(time.monotonic() - started, 1)
    return report
