"""``python -m tests.benchmark [--objects N] [--steady-seconds S] [--drift-interval D]``.

Runs the scale benchmark (``scale``: the real operator in its own process against the emulated
API server in another and the Renku double) and the pure reconcile benchmark (``pure``), and
prints their figures. Asserts nothing. Issue 9's targets are printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from tests.benchmark import profile
from tests.benchmark.pure import bench_reconcile
from tests.benchmark.scale import Options, bench_scale

TARGETS = {
    "Kubernetes writes per object until Ready (its own)": "<= 2 (smoke off)",
    "Kubernetes writes per minute, steady": "0",
    "Renku list requests per drift interval": "1",
    "operator RSS when all Ready (MiB)": "<= 150 at 1,000",
    "operator RSS after steady state (MiB)": "<= 150 at 1,000, flat",
    "seconds to delete all (last finalizer released)": "<= 60 at 1,000",
    "seconds from a description edit to Renku's PATCH": "<= 5",
    "smoke test on: seconds from a description edit to Renku's PATCH": "<= 5",
}


def parse(argv: list[str] | None = None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmark", description=__doc__)
    parser.add_argument("--objects", type=int, default=100, help="GlobalEnvironments (100)")
    parser.add_argument(
        "--steady-seconds", type=float, default=30.0, help="steady state measured (30)"
    )
    parser.add_argument(
        "--drift-interval", type=float, default=10.0, help="the operator's drift interval (10)"
    )
    parser.add_argument(
        "--settle-seconds", type=float, default=5.0, help="wait after all Ready (5)"
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="limit of each phase, in seconds (900)"
    )
    parser.add_argument("--profile", type=Path, help="py-spy profiles of each phase, into DIR")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="with --profile: the operator's allocations"
    )
    parser.add_argument("--log", type=Path, help="keep the operator's log here")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--no-pure", action="store_true", help="skip the pure reconcile bench")
    args = parser.parse_args(argv)
    options = Options(
        objects=args.objects,
        steady_seconds=args.steady_seconds,
        drift_interval=args.drift_interval,
        settle_seconds=args.settle_seconds,
        phase_timeout=args.timeout,
        profile_dir=args.profile,
        tracemalloc=args.tracemalloc,
        log_path=args.log,
    )
    return options, args


def show(results: dict[str, Any]) -> None:
    for key, value in results.items():
        target = TARGETS.get(key)
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        print(f"{key:66s} {text}" + (f"   [target {target}]" if target else ""))


def main() -> None:
    options, args = parse()
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average before the run {load[0]:.2f} / {load[1]:.2f}")
    results = asyncio.run(bench_scale(options))
    if not args.no_pure:
        results |= asyncio.run(bench_reconcile(1000))
    results["load average after the run (1 min)"] = round(os.getloadavg()[0], 2)
    show(results)
    for summary in profile.SUMMARIES:
        print(summary)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
