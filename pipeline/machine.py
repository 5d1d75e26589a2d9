"""What a measurement ran on, for the reports of benchmarks and searches.

Timings depend on the CPU, and so do the last digits of a training's float sums: TensorFlow's
oneDNN kernels take a different path on AVX-512 or AMX than on AVX2, so the same params and seed
give the same metrics on one machine but can differ slightly on another. Recording the CPU and
its widest vector instructions lets a reader tell the two apart.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
VECTOR_FLAGS = ("amx_tile", "avx512f", "avx2", "avx")  # widest first


def cpuinfo_field(name: str) -> str | None:
    """The first processor's `name` line of /proc/cpuinfo (Linux), or None."""
    if not CPUINFO.exists():
        return None
    return next((line.split(":", 1)[1].strip() for line in CPUINFO.read_text().splitlines()
                 if line.split(":", 1)[0].strip() == name), None)


def describe_machine() -> dict:
    flags = set((cpuinfo_field("flags") or "").split())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpuinfo_field("model name") or platform.processor() or platform.machine(),
            "cpu_model": cpuinfo_field("model"), "vector_instructions": next((f for f in VECTOR_FLAGS if f in flags), None),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),  # Linux: usable
            "memory_gib": round(memory, 1),
            "python": platform.python_version(), "platform": platform.platform()}
