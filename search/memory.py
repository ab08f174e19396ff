"""The process's own memory, as trials see it."""
from __future__ import annotations

from pathlib import Path


def anon_rss_mb(pid: int | str = "self") -> float | None:
    """Resident anonymous memory in MB (Linux's RssAnon) of this process or of `pid`: what the
    process itself holds, without the memory-mapped cache pages the OS can drop at will. None where
    /proc is not there (or the process has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None
