"""``python -m tests.benchmark.memory [--objects N] [--seconds S]``: the operator's memory
under a hostile registry (issue 19, finding 1).

The real operator in its own process (as in the scale benchmark: the emulated API server in
another, the Renku double here) checks N GlobalEnvironments whose image is on
tests/support/hostile_registry.py: the tag moves on every HEAD, every config blob is as large
as the client accepts and full of labels, every blob is redirected to another repository's
path, every challenge names a new token realm and every token is as long as the client
accepts and works once. Images are re-checked every ``--recheck-seconds`` (the operator's
IMAGE_CHECK_INTERVAL_SECONDS), so each check brings new digests and new tokens.

Prints the operator's RSS over time and its peak (VmHWM) beside half the chart's memory limit
(helm/renku-env-operator/values.yaml resources.limits.memory). Asserts nothing. The operator
is stopped early if its RSS passes ``--guard-mib`` (default: twice the chart's limit), and the
time it took is printed instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from renku_env_operator.clients import registry_auth
from renku_env_operator.clients.registry import RegistryClient
from tests.benchmark.emulator import DRIVER_AGENT
from tests.benchmark.scale import GENV_PATH, JSON, Bench, Options
from tests.support.hostile_http import HostileServer
from tests.support.hostile_registry import HostileRegistry
from tests.support.operator_fixtures import NAMESPACE, genv
from tests.support.renku_double import RenkuDouble

VALUES = Path(__file__).resolve().parents[2] / "helm/renku-env-operator/values.yaml"
_UNITS = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}


def chart_memory_limit_mib() -> float:
    limit = str(yaml.safe_load(VALUES.read_text())["resources"]["limits"]["memory"])
    for unit, factor in _UNITS.items():
        if limit.endswith(unit):
            return float(limit.removesuffix(unit)) * factor
    return int(limit) / 2**20


def largest_accepted() -> tuple[int, int]:
    """The largest config blob and token the operator's client accepts (before the token cap
    existed: the token answer's 64 KiB read limit)."""
    config = inspect.signature(RegistryClient).parameters["max_config_bytes"].default
    token = getattr(registry_auth, "MAX_TOKEN_CHARS", 64 * 1024 - 64)
    return int(config), int(token)


async def bench_memory(args: argparse.Namespace) -> dict[str, Any]:
    limit = chart_memory_limit_mib()
    guard = args.guard_mib or 2 * limit
    config_bytes, token_chars = largest_accepted()
    options = Options(
        objects=args.objects,
        steady_seconds=0,
        drift_interval=args.recheck_seconds,
        settle_seconds=0,
        phase_timeout=60,
        profile_dir=None,
        tracemalloc=False,
        log_path=args.log,
    )
    results: dict[str, Any] = {
        "objects": args.objects,
        "config blob served (bytes, the client's limit)": config_bytes,
        "token served (characters, the most the client accepts)": token_chars,
    }
    with contextlib.ExitStack() as stack:
        renku = stack.enter_context(RenkuDouble())
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        servers = [stack.enter_context(HostileServer()) for _ in range(args.registries)]
        registries = [
            HostileRegistry(server, config_bytes=config_bytes, token_chars=token_chars)
            for server in servers
        ]
        bench = Bench(options, renku, Path(tmp))
        log_path = args.log or Path(tmp) / "operator.log"
        with open(log_path, "wb") as log:
            try:
                async with aiohttp.ClientSession(headers={"User-Agent": DRIVER_AGENT}) as session:
                    bench.session = session
                    await bench.start_emulator()
                    await bench.start_operator(
                        log,
                        image_checks=True,
                        registry_insecure_hosts=[server.host for server in servers],
                        registry_internal_allowlist=["127.0.0.1"],
                        image_check_interval_seconds=args.recheck_seconds,
                        retry_backoff_seconds=args.recheck_seconds,
                        renku_image_check="Off",
                    )
                    assert bench.operator is not None
                    await bench.until(
                        "the operator's watch",
                        lambda s: f"globalenvironments:{NAMESPACE}" in s["watches"],
                        60,
                    )
                    idle = bench.operator.status("VmRSS")
                    names = [f"env-{index:04d}" for index in range(args.objects)]
                    await asyncio.gather(
                        *(
                            bench.call(
                                "POST",
                                GENV_PATH,
                                genv(
                                    name,
                                    image=registries[index % len(registries)].reference,
                                    smokeTest={"enabled": False},
                                ),
                                JSON,
                            )
                            for index, name in enumerate(names)
                        )
                    )
                    samples, over = await _watch(bench, args.seconds, guard)
                    results |= {
                        "operator RSS idle, 0 objects (MiB)": round(idle, 1),
                        "seconds measured": round(over if over is not None else args.seconds),
                        "images re-checked every (s)": args.recheck_seconds,
                        "registries (hosts; each one's checks share 8 slots)": len(registries),
                        "registries served: HEADs / config blobs / tokens": " / ".join(
                            str(sum(r.counts[key] for r in registries))
                            for key in ("HEAD", "config blobs", "tokens")
                        ),
                        "operator RSS every 10 s (MiB)": samples,
                        "operator RSS at the end (MiB)": round(bench.operator.status("VmRSS"), 1),
                        "operator peak RSS (VmHWM, MiB)": round(bench.operator.status("VmHWM"), 1),
                        "half the chart's memory limit (MiB)": round(limit / 2, 1),
                    }
                    if over is not None:
                        results["stopped: RSS passed the guard (MiB) after (s)"] = (
                            f"{guard:.0f} after {over:.0f}"
                        )
            finally:
                await bench.stop()
    peak = results.get("operator peak RSS (VmHWM, MiB)", float("inf"))
    results["peak under half the chart's limit"] = peak < limit / 2
    return results


async def _watch(bench: Bench, seconds: float, guard: float) -> tuple[list[int], float | None]:
    """RSS every second (every 10th kept), until `seconds` or the guard is passed."""
    assert bench.operator is not None
    started = time.monotonic()
    samples: list[int] = []
    tick = 0
    while (elapsed := time.monotonic() - started) < seconds:
        if not bench.operator.alive():
            raise RuntimeError("the operator exited")
        rss = bench.operator.status("VmRSS")
        if tick % 10 == 0:
            samples.append(round(rss))
        if rss > guard:
            samples.append(round(rss))
            return samples, elapsed
        tick += 1
        await asyncio.sleep(1)  # a benchmark samples over time on purpose
    return samples, None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmark.memory", description=__doc__)
    parser.add_argument("--objects", type=int, default=100, help="GlobalEnvironments (100)")
    parser.add_argument("--seconds", type=float, default=120.0, help="measured (120)")
    parser.add_argument(
        "--recheck-seconds", type=float, default=15.0, help="image re-check interval (15)"
    )
    parser.add_argument(
        "--guard-mib", type=float, default=0.0, help="stop above this RSS (2 x the chart limit)"
    )
    parser.add_argument(
        "--registries", type=int, default=1, help="hostile registries (hosts), objects spread (1)"
    )
    parser.add_argument("--log", type=Path, help="keep the operator's log here")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average before the run {load[0]:.2f} / {load[1]:.2f}")
    results = asyncio.run(bench_memory(args))
    results["load average after the run (1 min)"] = round(os.getloadavg()[0], 2)
    for key, value in results.items():
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        print(f"{key:60s} {text}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
