"""The real operator in its own process, so that its RSS and CPU time are its own.

``python -m tests.benchmark.operator_process SETTINGS_JSON`` runs ``run_operator`` exactly as
the integration suite's ``OperatorThread`` does (same settings helper, ``configure_for_emulator``
as kopf tuning), with ``KUBECONFIG`` pointing at the emulator. SIGTERM/SIGINT stop it (kopf's
own signal handling). With ``BENCH_TRACEMALLOC=<file>``, tracemalloc runs and SIGUSR1 writes
the top allocation sites to that file (slow: a profiling run only).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import tracemalloc
from collections import Counter
from types import FrameType

from renku_env_operator.config import Settings
from renku_env_operator.runner import run_operator
from tests.support.operator_runner import configure_for_emulator


def _dump_allocations(path: str) -> None:
    def dump(_signum: int, _frame: FrameType | None) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        stats = snapshot.statistics(
            "traceback" if tracemalloc.get_traceback_limit() > 1 else "lineno"
        )
        total = sum(stat.size for stat in stats)
        with open(path, "a") as out:
            out.write(f"--- traced {total / 2**20:.1f} MiB in {len(stats)} sites\n")
            for stat in stats[:30]:
                where = " <- ".join(
                    f"{f.filename.split('/')[-1]}:{f.lineno}" for f in stat.traceback
                )
                out.write(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d} {where}\n")

    signal.signal(signal.SIGUSR1, dump)


def _holders(sample: list[object]) -> Counter[str]:
    """What holds the sampled objects, by type; an instance's __dict__ by its owner's type.
    Two scans of the heap in all (gc.get_referrers walks every object per call)."""
    found = [h for h in gc.get_referrers(*sample) if h is not sample]
    found = [h for h in found if not isinstance(h, FrameType)]
    dicts = {id(h): h for h in found if isinstance(h, dict)}
    owners = {
        id(d): type(o).__qualname__
        for o in gc.get_referrers(*dicts.values())
        if (d := getattr(o, "__dict__", None)) is not None and id(d) in dicts
    }
    holders: Counter[str] = Counter()
    for holder in found:
        if id(holder) in owners:
            holders[f"{owners[id(holder)]}.__dict__"] += 1
        elif type(holder).__name__ == "coroutine":
            holders[f"coroutine {getattr(holder, '__qualname__', '?')}"] += 1
        else:
            holders[type(holder).__qualname__] += 1
    return holders


def _dump_census(path: str) -> None:
    """SIGUSR2 writes what the live objects are, by type (cheap until asked: no tracing)."""

    def dump(_signum: int, _frame: FrameType | None) -> None:
        gc.collect()
        counts: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        for item in gc.get_objects():
            name = type(item).__qualname__
            counts[name] += 1
            sizes[name] += sys.getsizeof(item)
        total = sum(sizes.values())
        with open(path, "a") as out:
            out.write(f"--- {sum(counts.values())} gc-tracked objects, {total / 2**20:.1f} MiB\n")
            for name, size in sizes.most_common(40):
                out.write(f"{size / 2**20:8.2f} MiB {counts[name]:9d} {name}\n")
            for name in (n for n, _ in counts.most_common(12)):
                sample = [o for o in gc.get_objects() if type(o).__qualname__ == name][-200:]
                out.write(f"  {name} held by: {dict(_holders(sample).most_common(6))}\n")
            packages = Counter(name.split(".")[0] for name in sys.modules)
            out.write(f"modules by package: {dict(packages.most_common(25))}\n")

    signal.signal(signal.SIGUSR2, dump)


def main() -> None:
    values = json.loads(sys.argv[1])
    if census := os.environ.get("BENCH_CENSUS"):
        _dump_census(census)
    if trace := os.environ.get("BENCH_TRACEMALLOC"):
        tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_DEPTH", "1")))
        _dump_allocations(trace)
    run_operator(Settings(**values), tune=configure_for_emulator)


if __name__ == "__main__":
    main()
