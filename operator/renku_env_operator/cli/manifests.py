"""Reading manifests for `validate`: files, directories and stdin, multi-document YAML, with
line numbers for every key (ruamel.yaml, YAML 1.1 like kubectl's parser)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

YAML_SUFFIXES = {".yaml", ".yml"}


class ManifestError(Exception):
    """A usage problem: a file that cannot be read or parsed."""


@dataclass(frozen=True)
class Document:
    source: str
    index: int  # 1-based position in its file
    data: Any

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """1-based line of the deepest key or item of `path` that exists."""
        node, line = self.data, getattr(getattr(self.data, "lc", None), "line", None)
        for part in path:
            position = _position(node, part)
            if position is None:
                break
            line = position
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
        return None if line is None else line + 1


def _position(node: Any, part: str | int) -> int | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        return int(lc.key(part)[0]) if isinstance(part, str) else int(lc.item(part)[0])
    except (KeyError, IndexError, TypeError):
        return None


def expand(paths: list[str]) -> list[tuple[str, bool]]:
    """(source, explicit) pairs: directories contribute their YAML files, recursively."""
    sources: list[tuple[str, bool]] = []
    for raw in paths:
        path = Path(raw)
        if raw == "-":
            sources.append(("-", True))
        elif path.is_dir():
            sources.extend((str(p), False) for p in sorted(path.rglob("*")) if _is_yaml(p))
        elif path.exists():
            sources.append((raw, True))
        else:
            raise ManifestError(f"{raw}: no such file or directory")
    return sources


def _is_yaml(path: Path) -> bool:
    return path.is_file() and path.suffix in YAML_SUFFIXES


def read_documents(source: str) -> Iterator[Document]:
    yaml = YAML(typ="rt")
    yaml.version = (1, 1)
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        documents = list(yaml.load_all(text))
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{source}: cannot read: {exc}") from None
    except YAMLError as exc:
        raise ManifestError(f"{source}: not valid YAML: {_one_line(exc)}") from None
    for index, data in enumerate(documents, start=1):
        if data is not None:
            yield Document(source="<stdin>" if source == "-" else source, index=index, data=data)


def _one_line(exc: YAMLError) -> str:
    """Where and what, without ruamel's internal '<unicode string>' marks and help links."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    what = f"{context}: {problem}" if context else str(problem)
    return f"line {mark.line + 1}, column {mark.column + 1}: {' '.join(what.split())}"
