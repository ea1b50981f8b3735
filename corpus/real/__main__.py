"""``python -m corpus.real convert|slice|eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from corpus.real.convert import CORPORA, convert_corpus, write_converted

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


if __name__ == "__main__":
    app()
