"""Every option's help text reaches `--help` whole: Typer renders help with Rich, which would swallow a
`[default: …]` as markup, so a default written that way silently vanished from the screen."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
import typer.main
from typer.testing import CliRunner

from plowline.cli import app

ROOT = typer.main.get_command(app)


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(ROOT))


def test_the_tree_has_every_command() -> None:
    assert {("up",), ("collector",), ("enrich",), ("load",), ("models", "run"), ("config", "show")} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda path: " ".join(path) or "plowline")
def test_every_option_help_is_shown_whole(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.replace("│", " ").split())
    for param in COMMANDS[path].params:
        text = getattr(param, "help", None)
        if text:
            assert " ".join(text.split()) in shown, f"{param.name}: {text!r} is not shown whole"
