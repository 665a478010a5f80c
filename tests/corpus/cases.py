"""Reads the manifest corpus: `invalid/*.yaml` carry their expectations in header comments.

# expect: <field path> | <substring of the message>    (one or more)
# cel: <location of the CEL rule that decides the case>  (optional; "(root)" for the top)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CORPUS = Path(__file__).parent
INVALID_DIR = CORPUS / "invalid"
VALID_DIR = CORPUS / "valid"
EXAMPLES_DIR = CORPUS.parents[1] / "examples"
ROOT = "(root)"

_HEADER = re.compile(r"^# (expect|cel): (.+)$")


@dataclass(frozen=True)
class Expectation:
    """A finding the case must produce: its field path and part of its message."""

    field: str
    substring: str


@dataclass(frozen=True)
class Case:
    """One invalid manifest and what must be said about it."""

    path: Path
    expects: tuple[Expectation, ...]
    cel: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.stem

    def document(self) -> Any:
        return load(self.path)


def _parse(path: Path) -> Case:
    expects: list[Expectation] = []
    cel: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _HEADER.match(line)
        if match is None:
            continue
        kind, value = match.groups()
        if kind == "cel":
            cel.append(value.strip())
            continue
        field, sep, substring = value.partition(" | ")
        if not sep:
            raise ValueError(f"{path.name}: expect line needs '<field> | <substring>': {line!r}")
        expects.append(Expectation(field.strip(), substring.strip()))
    return Case(path, tuple(expects), tuple(cel))


def invalid_cases() -> list[Case]:
    """Every invalid manifest, sorted by name."""
    return [_parse(p) for p in sorted(INVALID_DIR.glob("*.yaml"))]


def valid_files() -> list[Path]:
    """The tricky valid manifests and every GlobalEnvironment example shipped to users."""
    examples = [p for p in sorted(EXAMPLES_DIR.glob("*.yaml")) if _kind(p) == "GlobalEnvironment"]
    return sorted(VALID_DIR.glob("*.yaml")) + examples


def load(path: Path) -> Any:
    """The document as kubectl would send it (PyYAML reads YAML 1.1, like kubectl's go-yaml)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _kind(path: Path) -> Any:
    document = load(path)
    return document.get("kind") if isinstance(document, dict) else None
