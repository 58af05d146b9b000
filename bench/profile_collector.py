#!/usr/bin/env python3
"""Where a Plowline collector worker spends its CPU under max load: py-spy over wrk.

    .venv/bin/pip install py-spy      # a profiling tool for this script only, not a dependency
    .venv/bin/python bench/profile_collector.py --kind GET --workers 2 --seconds 10

Starts `plowline collector` (file:// raw stream, durable writes), drives it at max rate with the
same wrk script and requests as bench/collector_vs_nginx.py, samples every worker with
`py-spy record --subprocesses` meanwhile, and prints the top functions by own ("self") samples and by
inclusive samples, plus a few coarse buckets (HTTP parsing, ASGI glue, record building, sink, event
loop). The collapsed stacks are kept in bench/results/ for a flame graph (e.g. speedscope).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import collector_vs_nginx as bench

# What a sample of the event loop thread is doing, by its frames (first rule that matches wins).
CATEGORIES: list[tuple[str, Callable[[list[str]], bool]]] = [
    ("cyclic GC (gc_collect_main)", lambda frames: any("gc_collect" in f for f in frames)),
    (
        "getpid syscall (asyncio get_running_loop on 3.11, prometheus multiprocess)",
        lambda frames: _leaf_native(frames, ("getpid",)),
    ),
    ("socket write syscalls", lambda frames: _leaf_native(frames, ("write (libc", "send", "writev"))),
    ("socket read syscalls", lambda frames: _leaf_native(frames, ("read (libc", "recv"))),
    ("epoll wait", lambda frames: _leaf_native(frames, ("epoll",))),
    (
        "waking the fsync thread (futex / pthread_cond_signal)",
        lambda frames: _leaf_native(frames, ("pthread_cond", "futex", "sem_post")),
    ),
]


def _is_python(frame: str) -> bool:
    return ".py:" in frame or "<frozen" in frame or "<string>" in frame


def _leaf_native(frames: list[str], names: tuple[str, ...]) -> bool:
    # The innermost frames below the innermost Python frame.
    for frame in reversed(frames):
        if _is_python(frame):
            return False
        if any(name in frame for name in names):
            return True
    return False


def parse_collapsed(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        frames, _, count = line.rpartition(" ")
        stacks.append((frames.split(";"), int(count)))
    return stacks


def short(frame: str) -> str:
    """ "name (path/to/file.py:12)" -> "name (to/file.py:12)"."""
    match = re.match(r"(.*) \((.*)\)$", frame)
    if not match:
        return frame
    name, where = match.groups()
    return f"{name} ({'/'.join(where.split('/')[-2:])})"


def summarise(stacks: list[tuple[list[str], int]], top: int) -> dict[str, Any]:
    """Event-loop thread samples: categories, innermost Python function (self), inclusive functions."""
    main = [(frames, count) for frames, count in stacks if frames and "MainThread" in frames[0]]
    total = sum(c for _, c in main) or 1
    other_threads = sum(c for _, c in stacks) - sum(c for _, c in main)
    categories: collections.Counter[str] = collections.Counter()
    self_py: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in main:
        label = next((name for name, rule in CATEGORIES if rule(frames)), "Python code and the C it calls")
        categories[label] += count
        python = [f for f in frames if _is_python(f)]
        if python and label == "Python code and the C it calls":
            self_py[short(python[-1])] += count
        for frame in {short(f) for f in python}:
            inclusive[frame] += count

    def pct(c: int) -> float:
        return round(100 * c / total, 1)

    return {
        "main_thread_samples": total,
        "other_thread_samples": other_threads,
        "categories": [(name, pct(c)) for name, c in categories.most_common()],
        "self_top": [(name, pct(c)) for name, c in self_py.most_common(top)],
        # Frames on (nearly) every stack are the process's entry points: left out.
        "inclusive_top": [(name, pct(c)) for name, c in inclusive.most_common() if c < 0.97 * total][: top * 2],
    }


def worker_pids(server: bench.Server) -> list[int]:
    if server.workers == 1:
        return [server.proc.pid]
    pids = []
    for pid in bench.process_tree(server.proc.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing-fork" in cmdline:
            pids.append(pid)
    return pids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--kind", choices=("GET", "POST"), default="GET")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists() or shutil.which("wrk") is None:
        print("needs py-spy (.venv/bin/pip install py-spy) and wrk (apt-get install -y wrk)", file=sys.stderr)
        return 2

    run_dir = Path(tempfile.mkdtemp(prefix="plowline-profile-"))
    requests_file = run_dir / "requests.txt"
    bench.write_requests(requests_file, args.kind, 4096 if args.kind == "GET" else 1024, seed=7)
    server = bench.start_plowline(args.workers, run_dir / "data", run_dir / "collector.log")
    bench.RESULTS_DIR.mkdir(exist_ok=True)
    outs: list[Path] = []
    try:
        result: dict[str, Any] = {}

        def load() -> None:
            result.update(
                bench.run_wrk(
                    server,
                    requests_file,
                    mode="max",
                    track_s=args.seconds + 3,
                    drain_s=2,
                    connections=args.connections,
                    threads=2,
                )
            )

        loader = threading.Thread(target=load)
        loader.start()
        time.sleep(3)  # wrk waits for a quiet machine, then starts; sample once it is going
        spies = []
        for pid in worker_pids(server):
            out = bench.RESULTS_DIR / f"profile-{args.kind}-w{args.workers}-{pid}.collapsed"
            outs.append(out)
            cmd = [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(args.seconds),
                "--rate",
                str(args.rate),
                "--format",
                "raw",
                "--function",
                "--threads",
                "--native",
                "-o",
                str(out),
            ]
            spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for spy in spies:
            spy.wait()
        loader.join()
    finally:
        bench.stop(server.proc)
        shutil.rmtree(run_dir, ignore_errors=True)

    stacks = [stack for out in outs for stack in parse_collapsed(out)]
    summary = summarise(stacks, args.top)
    possible = args.rate * args.seconds * len(outs)
    print(f"wrk: {result.get('rps')} req/s while sampled, server CPU {result.get('server_cpu_pct')}% of a core")
    print(
        f"py-spy: {len(outs)} worker(s); event-loop thread on CPU in {summary['main_thread_samples']} of "
        f"{possible} sample slots ({100 * summary['main_thread_samples'] / max(possible, 1):.0f}%); "
        f"other threads {summary['other_thread_samples']} samples; stacks in {outs[0].parent}"
    )
    print("\nevent-loop thread, by what the sample is doing:")
    for name, p in summary["categories"]:
        print(f"  {p:5.1f}%  {name}")
    print("\ntop innermost Python functions (own time, with the C they call; GC and syscalls above excluded):")
    for name, p in summary["self_top"]:
        print(f"  {p:5.1f}%  {name}")
    print("\ntop Python functions by inclusive samples (event-loop thread):")
    for name, p in summary["inclusive_top"]:
        print(f"  {p:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
