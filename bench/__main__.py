"""Run the benchmarks: `python -m bench` (all) or `python -m bench ingest features` (some).

Each bench/bench_<name>.py has a `main(out_dir: Path) -> dict` that does its own set-up, measures,
and returns its figures; they are printed and written to bench/out/<name>.json (git-ignored).
BENCHMARKS.md holds the latest figures with the machine and the date.
"""
from __future__ import annotations

import importlib
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def machine() -> dict:
    import os

    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        figures = {"machine": machine(), **module.main(out / name)}
        (out / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str))
        print(json.dumps({name: figures}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
