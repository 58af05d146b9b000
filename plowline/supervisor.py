"""`plowline up`: start the pipeline's parts as child processes, restart any that crash, stop them cleanly.

Children are stopped in pipeline order on SIGINT/SIGTERM: first the collector (no new input, and
it answers only what it made durable), then enrich (it finishes and acks the batch in hand), then
the loaders. Nothing acknowledged is lost: every part only acks what its sinks made durable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from plowline.observability import get_logger

log = get_logger("supervisor")
RESTART_BACKOFF_S = (0.5, 1, 2, 5, 10)
STOP_TIMEOUT_S = 20.0


@dataclass
class ChildSpec:
    """A part of the pipeline: its name and the command that runs it."""

    name: str
    argv: Sequence[str]


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0
    exit_codes: list[int] = field(default_factory=list)


SUPERVISOR_PID_ENV = "PLOWLINE_SUPERVISOR_PID"


def die_with_supervisor() -> None:
    """In a child: be sent SIGTERM if the supervisor dies (even by kill -9), so no part runs orphaned."""
    supervisor = os.environ.get(SUPERVISOR_PID_ENV)
    if not supervisor or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(supervisor):  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def plowline_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "plowline", *args]


class Supervisor:
    """Runs children until a stop signal; a child that exits is restarted with backoff."""

    def __init__(self, specs: Sequence[ChildSpec], env: Mapping[str, str]) -> None:
        self.children = [Child(spec) for spec in specs]
        self.env = dict(env)
        self._stopping = False

    def _start(self, child: Child) -> None:
        # Each child gets its own process group, so a Ctrl-C at the terminal reaches only the
        # supervisor, which then stops the children one by one in pipeline order.
        child.process = subprocess.Popen(list(child.spec.argv), env=self.env, process_group=0)
        child.started_at = time.monotonic()
        log.info("started", child=child.spec.name, pid=child.process.pid, restarts=child.restarts)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if not self._stopping:
            log.info("stopping", signal=signal.Signals(signum).name)
        self._stopping = True

    def run(self, on_tick: Callable[[], None] = lambda: None) -> int:
        """Start every child, keep them running until SIGINT/SIGTERM, then stop them in order."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in self.children:
                self._start(child)
            while not self._stopping:
                self._watch()
                on_tick()
                time.sleep(0.2)
            return self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> None:
        now = time.monotonic()
        for child in self.children:
            process = child.process
            if process is None:
                if now >= child.next_start:
                    self._start(child)
                continue
            code = process.poll()
            if code is None:
                continue
            child.exit_codes.append(code)
            child.process = None
            if now - child.started_at > 60:
                child.restarts = 0  # it ran fine for a while: start the backoff over
            delay = RESTART_BACKOFF_S[min(child.restarts, len(RESTART_BACKOFF_S) - 1)]
            child.restarts += 1
            child.next_start = now + delay
            log.warning("child exited; restarting", child=child.spec.name, code=code, in_s=delay)

    def _stop_all(self) -> int:
        worst = 0
        for child in self.children:  # pipeline order: collector, enrich, loaders
            process = child.process
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("child did not stop in time; killing", child=child.spec.name)
                process.kill()
                code = process.wait()
            log.info("stopped", child=child.spec.name, code=code)
            if code not in (0, -signal.SIGTERM):
                worst = worst or 1
        return worst


def child_environment(settings_json: bytes) -> dict[str, str]:
    """The children's environment: the parent's, plus the effective settings so every part agrees."""
    from plowline.config import EFFECTIVE_SETTINGS_ENV

    env = dict(os.environ)
    env[EFFECTIVE_SETTINGS_ENV] = settings_json.decode()
    env[SUPERVISOR_PID_ENV] = str(os.getpid())
    return env
