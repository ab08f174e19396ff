"""The process's own memory, as trials see it."""
from __future__ import annotations

from pathlib import Path


def anon_rss_mb() -> float | None:
    """Resident anonymous memory in MB (Linux's RssAnon): what the process itself holds, without
    the memory-mapped cache pages the OS can drop at will. None where /proc is not there."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None
