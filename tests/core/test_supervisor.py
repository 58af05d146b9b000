"""The supervisor behind `plowline up`: restarts a crashed child, stops children in pipeline order, and
takes its children with it if it is killed itself.

Each test runs a real supervisor in its own process (it installs signal handlers) with small Python
children that record what happens to them in files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DEADLINE_S = 30.0

# A child: appends "start <pid>" to its log, then on SIGTERM appends "stop <name> <monotonic ns>" and exits 0.
# With CRASH_FIRST set it exits 3 on its first start (its log is empty then).
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from plowline.supervisor import die_with_supervisor
    die_with_supervisor()
    name, log = sys.argv[1], Path(sys.argv[2])
    first = not log.exists()
    with log.open("a") as out:
        out.write(f"start {os.getpid()}\\n")
    if first and os.environ.get("CRASH_FIRST") == name:
        sys.exit(3)
    def stop(signum, frame):
        with Path(sys.argv[3]).open("a") as out:
            out.write(f"{name} {time.monotonic_ns()}\\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    while True:
        time.sleep(0.05)
    """
)

SUPERVISOR = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from plowline.supervisor import ChildSpec, Supervisor, child_environment
    work = Path(sys.argv[1])
    names = sys.argv[2:]
    specs = [ChildSpec(n, [sys.executable, str(work / "child.py"), n, str(work / f"{n}.log"), str(work / "stops")])
             for n in names]
    sys.exit(Supervisor(specs, child_environment(b"{}")).run())
    """
)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def starts(log: Path) -> list[int]:
    if not log.exists():
        return []
    return [int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("start ")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by a dead parent's reaper) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


@pytest.fixture
def supervise(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    (tmp_path / "child.py").write_text(CHILD)
    started: list[subprocess.Popen[bytes]] = []

    def start(*names: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-c", SUPERVISOR, str(tmp_path), *names],
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
    for log in tmp_path.glob("*.log"):
        for pid in starts(log):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_crashed_child_is_restarted_and_the_others_keep_running(tmp_path: Path, supervise: Callable[..., subprocess.Popen[bytes]]) -> None:
    supervisor = supervise("collector", "enrich-0", env={"CRASH_FIRST": "enrich-0"})
    wait_until(lambda: len(starts(tmp_path / "enrich-0.log")) == 2, "the crashed child to be started again")
    assert len(starts(tmp_path / "collector.log")) == 1, "a healthy child is not restarted"
    enrich_pid = starts(tmp_path / "enrich-0.log")[1]
    wait_until(lambda: alive(enrich_pid), "the restarted child")
    os.kill(enrich_pid, signal.SIGKILL)  # a crash while running, e.g. the OOM killer
    wait_until(lambda: len(starts(tmp_path / "enrich-0.log")) == 3, "a second restart")
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(DEADLINE_S) == 0
    stopped = (tmp_path / "stops").read_text().split()
    assert stopped[0::2] == ["collector", "enrich-0"]


def test_sigint_to_the_terminal_group_stops_children_one_by_one_in_pipeline_order(
    tmp_path: Path, supervise: Callable[..., subprocess.Popen[bytes]]
) -> None:
    names = ["collector", "enrich-0", "enrich-1", "load-duckdb"]
    supervisor = supervise(*names)
    wait_until(lambda: all(starts(tmp_path / f"{name}.log") for name in names), "every child to start")
    pids = [starts(tmp_path / f"{name}.log")[0] for name in names]
    for pid in pids:  # each child has its own process group: Ctrl-C at a terminal reaches only the supervisor
        assert os.getpgid(pid) == pid
    os.killpg(supervisor.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert supervisor.wait(DEADLINE_S) == 0
    lines = [line.split() for line in (tmp_path / "stops").read_text().splitlines()]
    assert [name for name, _ in lines] == names, "stopped in pipeline order, one at a time"
    stamps = [int(stamp) for _, stamp in lines]
    assert stamps == sorted(stamps)
    assert not any(alive(pid) for pid in pids)


def test_children_do_not_outlive_a_killed_supervisor(tmp_path: Path, supervise: Callable[..., subprocess.Popen[bytes]]) -> None:
    supervisor = supervise("collector", "load-files")
    wait_until(lambda: starts(tmp_path / "collector.log") and starts(tmp_path / "load-files.log"), "both children")
    pids = [starts(tmp_path / "collector.log")[0], starts(tmp_path / "load-files.log")[0]]
    supervisor.kill()  # SIGKILL: no chance to stop anything itself
    supervisor.wait()
    wait_until(lambda: not any(alive(pid) for pid in pids), "the children to get SIGTERM from the kernel")
    # They stopped through their SIGTERM handler, i.e. cleanly, not killed.
    assert sorted(line.split()[0] for line in (tmp_path / "stops").read_text().splitlines()) == ["collector", "load-files"]
