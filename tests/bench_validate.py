"""Benchmark of `renku-env-operator validate`: prints figures, asserts nothing (`make bench-validate`).

Three cases, each timed as a process (interpreter start-up included, as a pre-commit hook or a
CI step pays it), best of a few runs:
- one 5 MB file of ~7,800 documents (GlobalEnvironments, a few with mistakes, and ConfigMaps);
- a directory of 200 small files;
- one file.
Targets (issue 11): 5 MB <= 3 s, 200 files <= 1 s, one file <= 0.4 s.

    .venv/bin/python -m tests.bench_validate [--command "python -c '...'"] [--runs N]
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGE = "ghcr.io/swissdatasciencecenter/renku/py-basic-jupyterlab:2.10.3"
TARGETS = {"5 MB, one file": 3.0, "200 files": 1.0, "one file": 0.4}


def global_environment(number: int, mistake: bool = False) -> str:
    port = 70000 if mistake else 8888
    return f"""apiVersion: renku.io/v1alpha1
kind: GlobalEnvironment
metadata:
  name: env-{number}
  namespace: renku
  labels:
    team: data-science
    tier: standard
  annotations:
    argocd.argoproj.io/sync-wave: "1"
    example.org/owner: platform-team@example.org
spec:
  image: {IMAGE}
  name: Environment number {number}
  description: A Python environment for the data science course, with the usual libraries.
  defaultUrl: /lab
  port: {port}
  uid: 1000
  gid: 100
  workingDirectory: /home/jovyan/work
  mountDirectory: /home/jovyan/work
  args: ["jupyter", "lab", "--ip=0.0.0.0", "--port={port}"]
  smokeTest:
    timeoutSeconds: 300
  imagePolicy:
    pinDigest: true
"""


def config_map(number: int) -> str:
    return f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-{number}
  namespace: renku
data:
  key: "value {number}"
"""


def big_file(path: Path, size: int = 5_000_000) -> int:
    documents, length, number = [], 0, 0
    while length < size:
        text = (
            config_map(number)
            if number % 10 == 9
            else global_environment(number, number % 500 == 0)
        )
        documents.append(text)
        length += len(text) + 4
        number += 1
    path.write_text("---\n".join(documents), encoding="utf-8")
    return number


def timed(command: list[str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=False, capture_output=True, timeout=600)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = str(Path(sys.executable).with_name("renku-env-operator"))
    parser.add_argument("--command", default=default, help="how to start the CLI")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cli = shlex.split(args.command)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        big = root / "big.yaml"
        count = big_file(big)
        many = root / "many"
        many.mkdir()
        for number in range(200):
            (many / f"env-{number}.yaml").write_text(global_environment(number, number == 7))
        one = many / "env-1.yaml"
        figures = {
            "5 MB, one file": timed([*cli, "validate", str(big)], args.runs),
            "200 files": timed([*cli, "validate", str(many)], args.runs),
            "one file": timed([*cli, "validate", str(one)], max(args.runs, 5)),
        }
        print(f"{big.stat().st_size / 1e6:.1f} MB, {count} documents; best of {args.runs} runs")
        for name, seconds in figures.items():
            print(f"{name:>15}: {seconds:6.2f} s  (target <= {TARGETS[name]} s)")


if __name__ == "__main__":
    main()
