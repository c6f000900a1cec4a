"""Run every benchmark and print one table: `python3 dev.py bench`."""

from __future__ import annotations

import datetime as dt
import os
import platform

from benchmarks import bench_client, bench_polling


def main() -> None:
    rows = [*bench_client.run(), *bench_polling.run()]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"benchmarks on {machine}, {dt.date.today().isoformat()}")
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {note}")


if __name__ == "__main__":
    main()
