"""Configuration: defaults, TOML, PLOWLINE_* overrides, precedence, and errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from plowline.config import load_config, settings_from_json, settings_to_json
from plowline.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PLOWLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_every_key_has_a_default() -> None:
    settings = load_config()
    assert settings.collector.port == 9090
    assert settings.collector.host == "127.0.0.1"
    assert settings.collector.cookie.name == "sp"
    assert settings.collector.networking.max_payload_size == 1048576
    assert settings.collector.networking.drop_payload_size == 2097152
    assert settings.raw_stream_url().endswith("plowline-data/streams/raw")


def test_toml_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "plowline.toml"
    config.write_text('[collector]\nport = 7000\nworkers = 3\n[collector.cookie]\nname = "uid"\nsecure = false\n')
    assert load_config().collector.port == 7000  # ./plowline.toml is picked up
    monkeypatch.setenv("PLOWLINE_COLLECTOR__PORT", "7100")
    settings = load_config(config)
    assert (settings.collector.port, settings.collector.workers, settings.collector.cookie.name) == (7100, 3, "uid")
    flagged = load_config(config, {"collector": {"port": 7200}})
    assert flagged.collector.port == 7200
    assert flagged.collector.workers == 3 and flagged.collector.cookie.secure is False


@pytest.mark.parametrize(
    ("toml", "key", "hint"),
    [
        ("[collector]\nport = 70000\n", "collector.port", "PLOWLINE_COLLECTOR__PORT"),
        ("[collector]\nprot = 1\n", "collector.prot", "unknown key"),
        ('[collector.cookie]\nsame_site = "sometimes"\n', "collector.cookie.same_site", "'None', 'Lax' or 'Strict'"),
        ('[collector.cookie]\ndomains = [".acme.com"]\n', "collector.cookie.domains", "must not start with a dot"),
        ('[collector.do_not_track_cookie]\nvalue = "("\n', "collector.do_not_track_cookie.value", "regular expression"),
        ('[collector.paths]\n"/one" = "/com.snowplowanalytics.snowplow/tp2"\n', "collector.paths", "two-segment"),
        ("[collector.networking]\nmax_payload_size = 10\ndrop_payload_size = 5\n", "collector.networking", "drop_payload_size"),
    ],
)
def test_bad_config_names_the_key_and_the_fix(tmp_path: Path, toml: str, key: str, hint: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.key.startswith(key)
    assert hint in str(caught.value)
    assert "fix:" in str(caught.value)


def test_toml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[collector\nport = 1")
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_bad_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLOWLINE_COLLECTOR__WORKERS", "many")
    with pytest.raises(ConfigError, match="PLOWLINE_COLLECTOR__WORKERS"):
        load_config()


def test_settings_travel_to_workers_as_json() -> None:
    settings = load_config(overrides={"collector": {"port": 1234, "paths": {"/a/b": "/r/tp2"}}})
    assert settings_from_json(settings_to_json(settings)) == settings


def test_cli_config_show_and_a_clear_error(tmp_path: Path) -> None:
    shown = subprocess.run([sys.executable, "-m", "plowline", "config", "show"], capture_output=True, check=True)
    assert orjson.loads(shown.stdout)["collector"]["port"] == 9090
    bad = tmp_path / "bad.toml"
    bad.write_text("[collector]\nport = -1\n")
    failed = subprocess.run([sys.executable, "-m", "plowline", "collector", "--config", str(bad)], capture_output=True, check=False)
    assert failed.returncode == 2
    assert b"collector.port" in failed.stderr and b"fix:" in failed.stderr
    assert b"Traceback" not in failed.stderr


@pytest.mark.parametrize("command", [[], ["up"], ["collector"], ["enrich"], ["load"], ["replay"], ["recover"],
                                     ["query"], ["send"], ["pixel"], ["config"], ["config", "show"], ["config", "docs"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "plowline", *command, "--help"], capture_output=True, check=True)
    assert b"Usage" in result.stdout
