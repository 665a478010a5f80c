"""The registry client's caches: LRU maps bounded by entries AND by an estimate of their bytes.

A namespace user chooses the registry, so a registry may serve the largest answers the client
accepts, a new digest on every HEAD and a new token realm on every challenge: whatever a cache
keeps, it keeps within `entries` and `max_bytes`, so the operator's memory does not grow with
the number of checks. Entries may carry an expiry (tokens): expired entries are dropped when
looked up and before every insert, never kept until the LRU end reaches them.

Written here rather than taken from `cachetools`: its caches bound one measure (`maxsize`, a
count or a sum of `getsizeof`), not both, and it would be a new dependency of the image for
some 60 lines.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def estimate_bytes(value: object) -> int:
    """What `value` holds in memory, roughly: `sys.getsizeof` over it and what it contains
    (containers, dataclass and pydantic fields). Shared objects are counted once."""
    seen: set[int] = set()
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if id(item) in seen or item is None or isinstance(item, bool):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, str | bytes | int | float):
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif isinstance(item, BaseModel):
            stack.append(item.__dict__)
        elif hasattr(item, "__dict__"):
            stack.append(vars(item))
        elif hasattr(item, "__slots__"):
            stack.extend(getattr(item, name, None) for name in item.__slots__)
    return total


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    size: int
    expires: float


class BoundedCache(Generic[K, V]):
    """An LRU map of at most `entries` entries and `max_bytes` estimated bytes.

    A value estimated larger than `max_bytes` is not kept at all (the caller used it once).
    """

    def __init__(
        self,
        entries: int,
        max_bytes: int,
        *,
        size: Callable[[K, V], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.entries = entries
        self.max_bytes = max_bytes
        self._size = size or (lambda key, value: estimate_bytes(key) + estimate_bytes(value))
        self._clock = clock
        self._items: OrderedDict[K, _Entry[V]] = OrderedDict()
        self.bytes = 0
        """The estimated bytes of what is kept now."""

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return entry.value

    def put(self, key: K, value: V, *, expires: float = float("inf")) -> None:
        if key in self._items:
            self._drop(key)
        self._drop_expired()
        size = self._size(key, value)
        if size > self.max_bytes or self.entries <= 0:
            return
        self._items[key] = _Entry(value, size, expires)
        self.bytes += size
        while len(self._items) > self.entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._items)))

    def _drop(self, key: K) -> None:
        self.bytes -= self._items.pop(key).size

    def _drop_expired(self) -> None:
        now = self._clock()
        for key in [k for k, entry in self._items.items() if entry.expires <= now]:
            self._drop(key)
