"""The `plowline` command run as users run it: one-shot commands, and long-running ones in their own session."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from plowline.config import CONFIG_FILE_ENV, EFFECTIVE_SETTINGS_ENV

STOP_TIMEOUT_S = 30.0


def plowline_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without a config file or inherited settings, plus `extra` (PLOWLINE_* overrides)."""
    env = {key: value for key, value in os.environ.items() if key not in (CONFIG_FILE_ENV, EFFECTIVE_SETTINGS_ENV)}
    env.update(extra or {})
    return env


def run_plowline(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
    stdout: IO[bytes] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`plowline ARGS...` to completion in `cwd` (a directory without plowline.toml); text stdout and stderr
    (stdout goes to the `stdout` file instead when given, and is then empty here)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "plowline", *args], cwd=cwd, env=plowline_env(env), start_new_session=True,
        stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"plowline {' '.join(args)} did not finish in {timeout_s}s:\n{err.decode()}") from None
    return subprocess.CompletedProcess(
        process.args, process.returncode, (out or b"").decode("utf-8", "replace"), err.decode("utf-8", "replace")
    )


@dataclass
class PlowlineProcess:
    """A long-running `plowline ARGS...` in its own session (SIGTERM reaches it and its children), logging to a file."""

    args: list[str]
    cwd: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool] | None = None, timeout_s: float = 60.0) -> PlowlineProcess:
        """Start it and wait until `ready()` holds (if given); fail with its log if it exits or never gets ready."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "plowline", *self.args], cwd=self.cwd, env=plowline_env(self.env),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        if ready is not None:
            self.wait_until(ready, timeout_s, "ready")
        return self

    def wait_until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"plowline {self.args[0]} exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() >= deadline:
                self.kill()
                raise AssertionError(f"plowline {self.args[0]}: not {what} after {timeout_s}s:\n{self.log()[-6000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        """SIGTERM the process group, as Ctrl-C would; the exit code (after SIGKILL, a failure, if it hangs)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process is not None else 0
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"plowline {self.args[0]} ignored SIGTERM for {STOP_TIMEOUT_S}s:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL the whole group (cleanup after a failure); harmless when it is gone."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


def collector_healthy(base_url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(base_url + "/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    return check
