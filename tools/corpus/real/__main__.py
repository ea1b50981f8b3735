"""``python -m tools.corpus.real convert|slice|eval``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tools.corpus.real.convert import CORPORA, SOURCE_DIRS, convert_corpus, write_converted

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def main() -> None:
    """Real agent runs as OTLP traces, and the evaluation of the pipeline on them."""


@app.command("convert")
def convert_command(
    corpus: Annotated[str, typer.Option(help="tau2 or wiki")],
    src: Annotated[
        Path, typer.Option(help="the corpus folder, e.g. ../shared/corpora/tau2-retail")
    ],
    out: Annotated[Path, typer.Option(help="folder for traces.jsonl and labels.jsonl")],
    limit: Annotated[int | None, typer.Option(help="only the first N runs by start time")] = None,
    seed: Annotated[int, typer.Option(help="seeds trace ids and synthetic identities")] = 0,
) -> None:
    """One corpus as OTLP JSON: DIR/traces.jsonl and DIR/labels.jsonl."""
    if corpus not in CORPORA:
        raise typer.BadParameter(f"expected one of {', '.join(CORPORA)}", param_hint="--corpus")
    runs = convert_corpus(corpus, src, seed=seed, limit=limit)
    count = write_converted(runs, out)
    failures = sum(1 for r in runs if r.run.outcome == "failure")
    typer.echo(
        f"{count} runs ({failures} failed) -> {out / 'traces.jsonl'}, {out / 'labels.jsonl'}"
    )


@app.command("slice")
def slice_command(
    corpora: Annotated[Path, typer.Option(help="folder holding tau2-retail/ and wiki-search/")],
    out: Annotated[Path, typer.Option(help="folder for slice.jsonl and labels.jsonl")],
    seed: Annotated[int, typer.Option(help="conversion seed")] = 0,
) -> None:
    """The committed slice: recurring failures of both corpora, with successes of the same tasks."""
    from tools.corpus.real.slice import choose, write_slice

    picked = []
    for corpus in CORPORA:
        picked += choose(convert_corpus(corpus, corpora / SOURCE_DIRS[corpus], seed=seed))
    count = write_slice(picked, out)
    failures = sum(1 for r in picked if r.run.outcome == "failure")
    typer.echo(f"{count} runs ({failures} failed) -> {out}")


@app.command("eval")
def eval_command(
    out: Annotated[Path, typer.Option(help="the Markdown report")] = Path("EVALUATION.md"),
    json_path: Annotated[Path | None, typer.Option("--json", help="every figure as JSON")] = None,
    corpora: Annotated[
        Path | None, typer.Option(help="folder holding tau2-retail/ and wiki-search/")
    ] = None,
    quick: Annotated[bool, typer.Option(help="the committed slice only")] = False,
    seed: Annotated[int, typer.Option(help="conversion seed")] = 0,
    timeout: Annotated[float, typer.Option(help="seconds to wait per corpus")] = 900.0,
) -> None:
    """Both labelled corpora through a fresh real stack each; figures, baselines and floors."""
    from tools.corpus.real.evaluation import DEFAULT_CORPORA, run_evaluation
    from tools.corpus.real.report import markdown, print_report, summary_lines

    report = run_evaluation(
        quick=quick,
        corpora=corpora or DEFAULT_CORPORA,
        seed=seed,
        timeout_s=timeout,
        argv=["eval", *sys.argv[2:]],
    )
    console = Console()
    print_report(report, console)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(report), encoding="utf-8")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for line in summary_lines(report):
        console.print(line)
    console.print(f"wrote {out}" + (f" and {json_path}" if json_path else ""))


if __name__ == "__main__":
    app()
