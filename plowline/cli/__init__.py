"""The `plowline` command: one entry point for every part of the pipeline.

Each module registers its commands on the shared Typer app (`common.app`) when imported; this
package imports them all, in the order `plowline --help` lists them.
"""

from __future__ import annotations

# isort: off
# Imported for their commands, in the order --help lists them: `up` and the parts first.
from plowline.cli import pipeline, data, config_commands, trackers
# isort: on
from plowline.cli.common import app

__all__ = ["app", "main"]

_COMMAND_MODULES = (pipeline, data, config_commands, trackers)


def main() -> None:
    app()
