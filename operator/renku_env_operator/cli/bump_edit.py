"""A byte-exact edit of one scalar, spec.image, in a YAML or JSON manifest.

Nothing is re-dumped: the file's text is kept and only the characters of the image scalar are
replaced, in the scalar's own quoting style. So comments, key order, quoting, flow style,
indentation and line endings (CRLF included) stay as they were. Positions come from PyYAML's
pure-Python composer, whose marks count characters of the decoded text (libyaml's may not).
An image the edit cannot reach safely (an alias, an anchor used elsewhere, a merge key, a
block scalar) is reported with the reason instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# An anchor (&name) or a tag (!tag) written before the scalar itself.
_PROPERTIES = re.compile(r"(?:(?:&\S+|!\S*)\s+)*")


@dataclass(frozen=True)
class Spot:
    """Where spec.image of one object is written: a character span, or why it cannot be edited."""

    document: int  # 1-based, as read_documents counts
    item: int | None  # position in a List's items
    start: int = 0
    end: int = 0
    style: str | None = None  # None (plain), "'" or '"'
    problem: str | None = None  # reason code
    why: str = ""


def spots(text: str) -> Iterator[Spot]:
    """spec.image of every object (documents, and items of a List) in the text."""
    loader = yaml.SafeLoader(text)
    try:
        index = 0
        while loader.check_node():
            index += 1
            root = loader.get_node()
            if root is None:
                continue
            uses = _uses(root)
            items = _list_items(root)
            if items is None:
                yield _spot(index, None, root, uses)
            else:
                for position, item in enumerate(items):
                    yield _spot(index, position, item, uses)
    finally:
        loader.dispose()


def _list_items(root: Node) -> list[Node] | None:
    kind = _get(root, "kind")
    items = _get(root, "items")
    if (
        isinstance(kind, ScalarNode)
        and kind.value.endswith("List")
        and isinstance(items, SequenceNode)
    ):
        return list(items.value)
    return None


def _get(node: Node, key: str) -> Node | None:
    found = _entry(node, key)
    return found[1] if found else None


def _entry(node: Node, key: str) -> tuple[Node, Node] | None:
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == key:
                return k, v
    return None


def _uses(root: Node) -> dict[int, int]:
    """How often each node appears in the tree (an alias makes it appear again)."""
    counts: dict[int, int] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        counts[id(node)] = counts.get(id(node), 0) + 1
        if counts[id(node)] > 1:
            continue
        if isinstance(node, MappingNode):
            for k, v in node.value:
                stack.extend((k, v))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return counts


def _aliased(key: Node, value: Node) -> bool:
    """A value that starts before its key ends was written elsewhere: it is an alias."""
    return value.start_mark.index < key.end_mark.index


def _spot(index: int, item: int | None, obj: Node, uses: dict[int, int]) -> Spot:
    def problem(code: str, why: str) -> Spot:
        return Spot(index, item, problem=code, why=why)

    spec = _entry(obj, "spec")
    if spec is None or _aliased(*spec):
        return problem("YamlAlias", "spec is not written here (an alias or a merge key)")
    found = _entry(spec[1], "image")
    if found is None:
        if _entry(spec[1], "<<") is not None:
            return problem("YamlMergeKey", "spec.image comes from a YAML merge key (<<)")
        return problem("NoImage", "spec.image is not written here")
    key, value = found
    line = value.start_mark.line + 1
    if _aliased(key, value):
        return problem("YamlAlias", f"spec.image is a YAML alias of line {line}: edit it by hand")
    if uses.get(id(value), 0) > 1:
        return problem(
            "YamlAlias", f"spec.image (line {line}) is an anchor used elsewhere: edit it by hand"
        )
    if not isinstance(value, ScalarNode):
        return problem("NoImage", "spec.image is not a string")
    if value.style not in (None, "'", '"'):
        return problem("BlockScalar", f"spec.image (line {line}) is a block scalar")
    start = value.start_mark.index
    span = value.end_mark.index
    properties = _PROPERTIES.match(value.start_mark.buffer or "", start)
    if properties is not None:
        start = properties.end()
    if value.start_mark.line != value.end_mark.line:
        return problem("MultiLine", f"spec.image (line {line}) spans several lines")
    return Spot(index, item, start, span, value.style)


def render(image: str, style: str | None, json_file: bool) -> str:
    """The new scalar in the old one's style (a plain scalar only when it reads back as is)."""
    if json_file or style == '"':
        return json.dumps(image)
    if style == "'":
        return "'" + image.replace("'", "''") + "'"
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*", image) and _reads_back(image):
        return image
    return json.dumps(image)


def _reads_back(image: str) -> bool:
    try:
        return bool(yaml.safe_load(f"k: {image}") == {"k": image})
    except yaml.YAMLError:
        return False


def apply(text: str, edits: list[tuple[Spot, str]], json_file: bool) -> str:
    """The text with each spot's scalar replaced (later spots first, so offsets hold)."""
    for spot, image in sorted(edits, key=lambda e: e[0].start, reverse=True):
        text = text[: spot.start] + render(image, spot.style, json_file) + text[spot.end :]
    return text
