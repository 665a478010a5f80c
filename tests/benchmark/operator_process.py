"""The real operator in its own process, so that its RSS and CPU time are its own.

``python -m tests.benchmark.operator_process SETTINGS_JSON`` runs ``run_operator`` exactly as
the integration suite's ``OperatorThread`` does (same settings helper, ``configure_for_emulator``
as kopf tuning), with ``KUBECONFIG`` pointing at the emulator. SIGTERM/SIGINT stop it (kopf's
own signal handling). With ``BENCH_TRACEMALLOC=<file>``, tracemalloc runs and SIGUSR1 writes
the top allocation sites to that file (slow: a profiling run only).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tracemalloc
from types import FrameType

from renku_env_operator.config import Settings
from renku_env_operator.runner import run_operator
from tests.support.operator_runner import configure_for_emulator


def _dump_allocations(path: str) -> None:
    def dump(_signum: int, _frame: FrameType | None) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        stats = snapshot.statistics("lineno")
        total = sum(stat.size for stat in stats)
        with open(path, "a") as out:
            out.write(f"--- traced {total / 2**20:.1f} MiB in {len(stats)} sites\n")
            for stat in stats[:30]:
                out.write(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d} {stat.traceback}\n")

    signal.signal(signal.SIGUSR1, dump)


def main() -> None:
    values = json.loads(sys.argv[1])
    if trace := os.environ.get("BENCH_TRACEMALLOC"):
        tracemalloc.start(1)
        _dump_allocations(trace)
    run_operator(Settings(**values), tune=configure_for_emulator)


if __name__ == "__main__":
    main()
