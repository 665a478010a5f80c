"""Reading manifests for `validate`: files, directories and stdin, YAML and JSON.

Speed matters (pre-commit hooks, CI over whole repositories): documents are read with libyaml
(PyYAML's C loader) and the composed node tree is kept, so a line number is looked up only for a
document that has a finding. Scalars are read as kubectl reads them (sigs.k8s.io/yaml, i.e.
go-yaml v2, YAML 1.1 with Go's number syntax), not as plain PyYAML would:

- `yes`/`no`/`on`/`off`/`y`/`n` (any case variant go-yaml knows) are booleans;
- `0o777` and `0777` are octal integers (511), `1_000` is 1000, `1e3` is a number;
- `1:30` (YAML 1.1 base 60) and `2024-01-01` (timestamps) stay strings;
- a key given twice in one mapping is an error, as kubectl reports it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

YAML_SUFFIXES = frozenset({".yaml", ".yml"})
JSON_SUFFIXES = frozenset({".json"})
SUFFIXES = YAML_SUFFIXES | JSON_SUFFIXES
# Directories a repository walk never enters: VCS data, virtualenvs, caches, dependencies.
_PRUNED = frozenset({"node_modules", "__pycache__"})
_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.DOTALL)

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class KubeLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """libyaml's safe loader with kubectl's reading of scalars (see the module docstring)."""

    bool_values = {**yaml.SafeLoader.bool_values, "y": True, "n": False}

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value != "<<":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    first = seen[key].start_mark.line + 1
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f'found duplicate key "{key_node.value}" (first at line {first})',
                        key_node.start_mark,
                    )
                seen[key] = key_node
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping

    def construct_yaml_int(self, node: ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        if digits[:2] in {"0o", "0O"} or (
            len(digits) > 1 and digits[0] == "0" and digits[1].isdigit()
        ):
            return sign * int(digits.lstrip("0oO") or "0", 8)
        return sign * int(digits, 0)


def _kubectl_resolvers() -> None:
    resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}
    for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items():
        kept = [
            (tag, regexp)
            for tag, regexp in entries
            if tag
            not in {
                "tag:yaml.org,2002:int",
                "tag:yaml.org,2002:float",
                "tag:yaml.org,2002:bool",
                "tag:yaml.org,2002:timestamp",
            }
        ]
        if kept:
            resolvers[first] = kept
    KubeLoader.yaml_implicit_resolvers = resolvers
    KubeLoader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(
            r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE"
            r"|on|On|ON|off|Off|OFF)$"
        ),
        list("yYnNtTfFoO"),
    )
    # Go's strconv.ParseInt(s, 0, 64) after go-yaml drops underscores: decimal, 0x, 0o, 0b, 0NNN.
    KubeLoader.add_implicit_resolver(
        "tag:yaml.org,2002:int",
        re.compile(
            r"^[-+]?(?:0[bB][01_]+|0[oO][0-7_]+|0[xX][0-9a-fA-F_]+|0[0-7_]+|[1-9][0-9_]*|0)$"
        ),
        list("-+0123456789"),
    )
    KubeLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+0123456789."),
    )


_kubectl_resolvers()
KubeLoader.add_constructor("tag:yaml.org,2002:int", KubeLoader.construct_yaml_int)
KubeLoader.add_constructor("tag:yaml.org,2002:timestamp", KubeLoader.construct_yaml_str)


class UsageError(Exception):
    """A usage problem: a path that does not exist."""


@dataclass(frozen=True)
class Source:
    """One input: a file, or standard input (`-`)."""

    path: str

    @property
    def label(self) -> str:
        return "<stdin>" if self.path == "-" else self.path

    @property
    def is_json(self) -> bool:
        return Path(self.path).suffix in JSON_SUFFIXES


@dataclass
class Document:
    """One parsed document (or one item of a `kind: List`), with lazy line lookup."""

    source: str
    index: int  # 1-based position in its file
    data: Any
    node: Callable[[], Node | None]
    prefix: tuple[str | int, ...] = ()  # ("items", 3) for an item of a List
    _cached: list[Node | None] = field(default_factory=list, repr=False)

    def position(self, path: tuple[str | int, ...]) -> tuple[int | None, int | None]:
        """1-based (line, column) of the deepest key or item of `path` that exists."""
        if not self._cached:
            self._cached.append(self.node())
        node = self._cached[0]
        if node is None:
            return None, None
        mark = node.start_mark
        for part in (*self.prefix, *path):
            found = _child(node, part)
            if found is None:
                break
            key, node = found
            mark = key.start_mark
        return mark.line + 1, mark.column + 1


def _child(node: Node, part: str | int) -> tuple[Node, Node] | None:
    """(where to point, the value) for one step of a path."""
    if isinstance(node, MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == part:
                return key, value
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return item, item
    return None


@dataclass(frozen=True)
class ParseError:
    """Why a file (from `document` on) could not be read, and where."""

    document: int
    message: str
    line: int | None = None
    column: int | None = None


def expand(paths: list[str]) -> tuple[list[Source], list[str]]:
    """Every input file, and the paths that do not exist (usage errors).

    Directories contribute their .yaml, .yml and .json files, recursively, sorted; hidden
    directories (.git, .venv, ...) and node_modules are not entered.
    """
    sources: list[Source] = []
    missing: list[str] = []
    for raw in paths:
        path = Path(raw)
        if raw == "-":
            sources.append(Source("-"))
        elif path.is_dir():
            sources.extend(Source(p) for p in _walk(raw))
        elif path.exists():
            sources.append(Source(raw))
        else:
            missing.append(f"{raw}: no such file or directory")
    return sources, missing


def _walk(root: str) -> list[str]:
    found: list[str] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".") and d not in _PRUNED]
        found.extend(
            os.path.join(directory, name) for name in files if os.path.splitext(name)[1] in SUFFIXES
        )
    return sorted(found)


def read_text(source: Source) -> str | ParseError:
    if source.path == "-":
        return sys.stdin.read()
    try:
        raw = Path(source.path).read_bytes()
    except OSError as exc:
        return ParseError(1, f"cannot read: {exc.strerror or exc}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return ParseError(
            1,
            f"cannot read: not UTF-8 text (byte 0x{raw[exc.start]:02x}): save it as UTF-8",
            line,
            column,
        )


def template_line(text: str) -> int | None:
    """1-based line of the first `{{ ... }}` expression (Helm, Go templates, Jinja), if any."""
    match = _TEMPLATE.search(text)
    return None if match is None else text.count("\n", 0, match.start()) + 1


def read_documents(source: Source, text: str) -> Iterator[Document | ParseError]:
    """The documents of one file; a ParseError ends the file (what came before stands)."""
    if source.is_json:
        yield from _read_json(source, text)
        return
    loader = KubeLoader(text)
    index = 0
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                index += 1
                node = loader.get_node()
                data = loader.construct_document(node)
            except yaml.MarkedYAMLError as exc:
                yield _yaml_error(exc, max(index, 1))
                return
            except yaml.YAMLError as exc:
                yield ParseError(max(index, 1), f"not valid YAML: {' '.join(str(exc).split())}")
                return
            except (ValueError, OverflowError) as exc:  # a number int() refuses
                yield ParseError(index, f"not valid YAML: {exc}")
                return
            except RecursionError:
                yield ParseError(index, "not valid YAML: nested too deeply to read")
                return
            if data is not None:
                yield Document(source.label, index, data, _constant(node))
    finally:
        loader.dispose()


def _constant(node: Node) -> Callable[[], Node | None]:
    return lambda: node


def _read_json(source: Source, text: str) -> Iterator[Document | ParseError]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        yield ParseError(1, f"not valid JSON: {exc.msg}", exc.lineno, exc.colno)
        return
    except RecursionError:
        yield ParseError(1, "not valid JSON: nested too deeply to read")
        return

    def locate() -> Node | None:
        # JSON is YAML: compose it only when a finding needs a line number.
        try:
            node: Node | None = yaml.compose(text, Loader=KubeLoader)
        except yaml.YAMLError:
            return None
        return node

    if data is not None:
        yield Document(source.label, 1, data, locate)


def _yaml_error(exc: yaml.MarkedYAMLError, index: int) -> ParseError:
    """What and where, in one line, without PyYAML's '<unicode string>' marks."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or ""
    context = exc.context
    what = f"{context}: {problem}" if context and problem else (problem or context or str(exc))
    message = f"not valid YAML: {' '.join(what.split())}"
    if "tab" in what.lower() or "\\t" in what:
        message += " (YAML indents with spaces, not tabs)"
    if mark is None:
        return ParseError(index, message)
    return ParseError(index, message, mark.line + 1, mark.column + 1)
