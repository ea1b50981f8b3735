"""The CLI assembly: the product's commands register themselves, the tools' commands come
through the promote.commands entry points, and a tool that is not installed is no error."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
import typer
from typer.testing import CliRunner

from promoter import cli

pytestmark = pytest.mark.logic

PRODUCT = (
    "up",
    "down",
    "topics",
    "migrate",
    "send",
    "status",
    "wait",
    "top",
    "fixtures",
    "decisions",
    "dlq",
    "replay",
    "export",
    "report",
)


def _names(app: typer.Typer) -> set[str]:
    commands = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    return commands | {g.name for g in app.registered_groups if g.name}


def _entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=cli.PLUGIN_GROUP)


def test_the_tools_commands_come_through_their_entry_points() -> None:
    names = _names(cli.build())
    assert {*PRODUCT, "review"} <= names
    assert {"bench", "demo"} <= names  # tools/ is importable in the repository's venv


def test_a_tool_that_is_not_installed_leaves_the_product_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    absent = _entry("absent", "tools_not_installed.cli:register")
    monkeypatch.setattr(cli, "entry_points", lambda group: [absent])
    app = cli.build()
    assert _names(app) == {*PRODUCT, "review"}
    done = CliRunner().invoke(app, ["--help"])
    assert done.exit_code == 0 and "absent" not in done.output


def test_a_tool_whose_own_import_fails_is_an_error_not_a_missing_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the tool's own package missing means 'not installed'; a dependency it lacks is a
    fault to show, not a command to drop silently."""
    broken = _entry("broken", "tools.bench.cli:register")

    def load(self: EntryPoint) -> object:
        raise ModuleNotFoundError("No module named 'faker'", name="faker")

    monkeypatch.setattr(cli, "entry_points", lambda group: [broken])
    monkeypatch.setattr(EntryPoint, "load", load)
    with pytest.raises(ModuleNotFoundError):
        cli.build()
