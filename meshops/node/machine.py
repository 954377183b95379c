"""The machine state a heartbeat reports, read with psutil (GPUs through nvidia-smi if any)."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

__all__ = ["MachineState", "gpus"]

log = logging.getLogger(__name__)

_GIB = 1024**3


def gpus(timeout: float = 2.0) -> list[dict[str, Any]]:
    """GPUs as nvidia-smi reports them; an empty list on machines without one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    query = "name,memory.total,memory.used,utilization.gpu,temperature.gpu"
    try:
        out = subprocess.run(
            [smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia-smi failed: %s", exc)
        return []
    found = []
    for line in out.strip().splitlines():
        name, total, used, util, temp = (part.strip() for part in line.split(","))
        found.append(
            {
                "NAME": name,
                "TOTAL_MEM": float(total) / 1024,
                "ALLOCATED_MEM": float(used) / 1024,
                "GPU_USED": float(util),
                "GPU_TEMP": float(temp),
            }
        )
    return found


class MachineState:
    """Samples the machine; GPU discovery runs once (it spawns a process)."""

    def __init__(self, data_dir: str) -> None:
        self._data_dir = data_dir
        self._started = time.time()
        self._gpus = gpus()
        self._cpu = _cpu_name()
        psutil.cpu_percent(None)  # prime: the next call measures since now

    def sample(self) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(self._data_dir)
        return {
            "MACHINE_IP": None,
            "MACHINE_MEMORY": round(memory.total / _GIB, 2),
            "AVAILABLE_MEMORY": round(memory.available / _GIB, 2),
            "PROCESS_MEMORY": round(psutil.Process().memory_info().rss / _GIB, 3),
            "CPU_USED": psutil.cpu_percent(None),
            "CPU_NR_CORES": os.cpu_count(),
            "CPU": self._cpu,
            "GPUS": self._gpus or "N/A",
            "DEFAULT_CUDA": None,
            "TOTAL_DISK": round(disk.total / _GIB, 2),
            "AVAILABLE_DISK": round(disk.free / _GIB, 2),
            "UPTIME": round(time.time() - self._started, 1),
        }


def _cpu_name() -> str:
    """The CPU model on Linux (/proc/cpuinfo), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
