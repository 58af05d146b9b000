"""`plowline config show` and `plowline config docs`."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from plowline.cli.common import (
    ConfigOption,
    config_app,
    settings_from_options,
)
from plowline.config import Settings, settings_to_json


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective configuration (defaults, TOML and PLOWLINE_* overrides applied) as JSON."""
    sys.stdout.write(settings_to_json(settings_from_options(config)).decode() + "\n")


@config_app.command("docs")
def config_docs() -> None:
    """List every configuration key with its type, default and description."""
    table = Table("key", "type", "default", "description", title="plowline.toml keys")
    for key, annotation, default, description in _walk_fields(Settings, ""):
        table.add_row(key, annotation, default, description)
    Console().print(table)


def _walk_fields(model: Any, prefix: str) -> list[tuple[str, str, str, str]]:
    from pydantic import BaseModel

    rows: list[tuple[str, str, str, str]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(_walk_fields(annotation, key + "."))
            continue
        default = field.get_default(call_default_factory=True)
        type_name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        rows.append((key, type_name, repr(default), field.description or ""))
    return rows
