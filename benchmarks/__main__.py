"""Run the benchmarks and print one table: `python3 dev.py bench [--quick] [NAME ...]`.

    NAME          one or more of: client, polling, ack, delivery, memory, odd (the default: all
                  of these), discord (100 two-minute jobs in real time, about 2.5 minutes),
                  scale (SQLite against PostgreSQL, what one process carries: docs/scaling.md)
    --quick       smaller runs (about a minute and a half in all instead of about four)
    --markdown F  also write the table, the machine and the date into F between the markers
                  `<!-- results:begin -->` and `<!-- results:end -->` (appended, markers and
                  all, where F has none), keeping whatever else F says

Other processes on the machine skew the timings: the load they added during each benchmark is
measured (the machine's busy CPU time minus this process tree's) and printed with the results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import (
    bench_ack,
    bench_client,
    bench_delivery,
    bench_memory,
    bench_odd_jobs,
    bench_polling,
    bench_scale,
)
from benchmarks.common import Row

BENCHMARKS: dict[str, Callable[[bool], list[Row]]] = {
    "client": bench_client.run,
    "polling": bench_polling.run,
    "ack": bench_ack.run,
    "delivery": bench_delivery.run,
    "memory": bench_memory.run,
    "odd": bench_odd_jobs.run,
    "discord": bench_delivery.run_long,
    "scale": bench_scale.run,
}
# Run when no NAME is given (`discord` takes minutes of real time, `scale` minutes and a
# PostgreSQL server of its own: only by name).
DEFAULT = ("client", "polling", "ack", "delivery", "memory", "odd")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


@dataclass
class Ran:
    name: str
    rows: list[Row]
    seconds: float
    # Share of the machine's CPU time used by other processes while it ran (0..1).
    background: float


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / tick, sum(fields) / tick


def _own_cpu() -> float:
    """CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def measure(name: str, quick: bool) -> Ran:
    busy0, total0 = _machine_busy()
    own0 = _own_cpu()
    started = time.perf_counter()
    rows = BENCHMARKS[name](quick)
    seconds = time.perf_counter() - started
    busy1, total1 = _machine_busy()
    other = max(0.0, (busy1 - busy0) - (_own_cpu() - own0))
    return Ran(name, rows, seconds, other / max(total1 - total0, 1e-9))


def revision() -> str:
    """The commit measured, and whether the bot's code differed from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "bot", "cogs"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{head} with uncommitted changes in bot/ or cogs/" if dirty else head


def machine() -> dict[str, str]:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = 0
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    return {
        "CPU": f"{model}, {os.cpu_count()} cores ({platform.machine()})",
        "RAM": f"{ram / 1024**3:.1f} GiB",
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "OS": f"{platform.system()} {platform.release()}",
        "Code": revision(),
    }


def print_table(runs: list[Ran]) -> None:
    rows = [r for ran in runs for r in ran.rows]
    width = max(len(r.name) for r in rows)
    value_width = max(len(r.value) for r in rows)
    for ran in runs:
        print(
            f"-- {ran.name}: {ran.seconds:.0f} s; other processes used "
            f"{ran.background:.0%} of the machine's CPU meanwhile"
        )
        for row in ran.rows:
            print(f"{row.name:<{width}}  {row.value:<{value_width}}  {row.note}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(runs: list[Ran], command: str, when: dt.datetime) -> str:
    info = machine()
    lines = [
        BEGIN,
        f"Produced by `{command}` on {when:%Y-%m-%d %H:%M} UTC.",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        "- Background load (CPU share of other processes on the machine while each benchmark "
        "ran): "
        + ", ".join(f"{ran.name} {ran.background:.0%} ({ran.seconds:.0f} s)" for ran in runs),
        "",
        "| Benchmark | Result | Notes |",
        "|---|---|---|",
    ]
    lines += [
        f"| {_cell(r.name)} | {_cell(r.value)} | {_cell(r.note)} |"
        for ran in runs
        for r in ran.rows
    ]
    lines += ["", "What each row measures:", ""]
    lines += [f"- **{r.name}**: {r.what}" for ran in runs for r in ran.rows if r.what]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, section: str) -> None:
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        head, _, rest = old.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + section.rstrip("\n") + tail
    elif old.strip():
        text = old.rstrip("\n") + "\n\n" + section
    else:
        text = "# Benchmarks\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the results")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names: list[str] = args.names or list(DEFAULT)
    when = dt.datetime.now(dt.UTC)
    info = machine()
    with open("/proc/loadavg") as load:
        loadavg = " ".join(load.read().split()[:3])
    print(
        f"benchmarks on {info['CPU']}, {info['RAM']}, Python {info['Python']}, "
        f"{when:%Y-%m-%d %H:%M} UTC; load average {loadavg}; code {info['Code']}",
        flush=True,
    )
    runs: list[Ran] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        runs.append(measure(name, args.quick))
    print_table(runs)
    if args.markdown is not None:
        shown = ["python3", "dev.py", "bench", *(["--quick"] if args.quick else []), *args.names]
        shown += ["--markdown", str(args.markdown)]
        write_markdown(args.markdown, markdown(runs, shlex.join(shown), when))


if __name__ == "__main__":
    main()
