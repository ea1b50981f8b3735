"""`promote`: the one entry point a user needs.

This module only assembles the CLI: each command module registers its own commands, and the
tools beside the product (the benchmark, the demo corpus) add theirs through the
``promote.commands`` entry point group, so the product imports none of them. Nothing but the
entry point (``promote``, ``python -m promoter``) imports this module; what commands share
is in promoter.context."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

import typer

from promoter import catalog, exporting, lifecycle, replay, review_cli, send_cli, watching

PLUGIN_GROUP = "promote.commands"

# The product's own commands, in the order `promote --help` lists them.
COMMANDS: tuple[ModuleType, ...] = (
    lifecycle,
    send_cli,
    watching,
    catalog,
    replay,
    exporting,
    review_cli,
)


def _plugin(entry: EntryPoint) -> Callable[[typer.Typer], None] | None:
    """The ``register`` function an entry point names, or None when the package that holds it
    is not installed here (the container image ships the product without tools/)."""
    try:
        register: Callable[[typer.Typer], None] = entry.load()
    except ModuleNotFoundError as error:
        if error.name and (entry.module + ".").startswith(error.name + "."):
            return None
        raise
    return register


def build() -> typer.Typer:
    app = typer.Typer(
        help="Trace Promoter: production agent traces → offline test fixtures.",
        no_args_is_help=True,
        add_completion=False,
    )
    for module in COMMANDS:
        module.register(app)
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        register = _plugin(entry)
        if register is not None:
            register(app)
    return app


app = build()
