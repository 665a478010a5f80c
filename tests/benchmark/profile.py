"""Sampling profiles of the benchmark's processes with py-spy (``--profile DIR``).

py-spy (``pip install py-spy``; not a project dependency) samples a running process from the
outside, without slowing it much (``--nonblocking``). Each phase writes collapsed stacks
(``DIR/<process>-<phase>.txt``, for flame graph tools) and prints the functions with the most
samples: on their own ("self") and with what they call ("total").
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

TOP = 15
# Frames every sample shares (the event loop, the process's entry): they say nothing.
_PLUMBING = ("asyncio/", "<frozen", "threading.py", "selectors.py", "benchmark/", "runner.py")
SUMMARIES: list[str] = []  # printed after the figures


class HasPid(Protocol):
    name: str

    @property
    def pid(self) -> int: ...


@contextmanager
def recording(directory: Path | None, phase: str, *processes: HasPid | None) -> Iterator[None]:
    """Record each process during the block (nothing without a directory)."""
    beside = Path(sys.executable).parent / "py-spy"  # installed in the venv, not on PATH
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if directory is None or spy is None:
        if directory is not None:
            print("py-spy is not installed: no profile")
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    running = []
    for process in processes:
        if process is None:
            continue
        out = directory / f"{process.name}-{phase}.txt"
        command = [spy, "record", "--pid", str(process.pid), "--format", "raw"]
        command += ["--rate", "50", "--nonblocking", "--output", str(out)]
        running.append((out, subprocess.Popen(command, stdout=subprocess.DEVNULL)))
    try:
        yield
    finally:
        for _, spy_process in running:
            spy_process.send_signal(signal.SIGINT)
        for out, spy_process in running:
            spy_process.wait(60)
            if out.exists():
                SUMMARIES.append(summary(out))


def summary(path: Path) -> str:
    """The top functions of a collapsed-stack file, by self and by total samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        count = int(number)
        frames = [_short(frame) for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            if not any(part in frame for part in _PLUMBING):
                total[frame] += count
    lines = [f"== {path.name}: {samples} samples"]
    for title, counter in (("self", own), ("total", total)):
        lines.append(f"  top by {title}:")
        for frame, hits in counter.most_common(TOP):
            lines.append(f"    {hits / max(samples, 1) * 100:5.1f}%  {frame}")
    return "\n".join(lines)


def _short(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)": lines split one function.
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    parts = Path(file).parts
    return f"{name} ({'/'.join(parts[-2:])})"
