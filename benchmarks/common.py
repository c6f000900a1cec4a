"""What every benchmark shares: the row it reports, percentiles and RSS readings."""

from __future__ import annotations

import math
import threading
import time
from typing import NamedTuple


class Row(NamedTuple):
    """One line of the results table. `what` says in one sentence what the row measures."""

    name: str
    value: str
    note: str
    what: str = ""


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of `values` (0 < share <= 1)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of a process, in bytes."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(rest.split()[0]) * 1024
    if "VmRSS" not in found:
        raise RuntimeError(f"no VmRSS for process {pid}")
    return found


def rss_bytes(pid: int | str = "self") -> int:
    return proc_status(pid)["VmRSS"]


def reset_peak(pid: int | str = "self") -> bool:
    """Reset a process's VmHWM to its current RSS (Linux 4.0+); False where that is refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


class PeakSampler:
    """Samples a process's RSS every few milliseconds in a thread (the event loop is busy)."""

    def __init__(self, pid: int | str = "self", period: float = 0.002) -> None:
        self.pid = pid
        self.period = period
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return  # the process is gone
            self.samples += 1
            time.sleep(self.period)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def mb(n: float) -> str:
    return f"{n / 1_048_576:.1f} MB"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
