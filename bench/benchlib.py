"""What every benchmark script records about the machine it ran on (imported as a sibling module)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def machine_facts() -> dict[str, Any]:
    """Cores, CPU model, RAM, kernel, Python and Plowline versions, and the load average now."""
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    import plowline

    return {
        "nproc": os.cpu_count(), "cpu_model": cpu, "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(), "python": platform.python_version(), "plowline": plowline.__version__,
        "loadavg_at_start": os.getloadavg(),
    }
