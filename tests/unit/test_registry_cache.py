"""BoundedCache: the LRU map every registry cache is, bounded by entries and by bytes."""

from __future__ import annotations

from renku_env_operator.clients.registry_cache import BoundedCache, estimate_bytes
from renku_env_operator.domain.images import ImageConfig


def test_entries_are_bounded_and_the_least_recently_used_goes_first() -> None:
    cache: BoundedCache[str, str] = BoundedCache(2, 10**6)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"  # now b is the least recently used
    cache.put("c", "3")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("1", None, "3")


def test_bytes_are_bounded_and_an_entry_over_the_whole_budget_is_not_kept() -> None:
    cache: BoundedCache[str, str] = BoundedCache(100, 10_000)
    for index in range(10):
        cache.put(f"k{index}", "x" * 3000)
    assert len(cache) == 3
    assert cache.bytes <= 10_000
    cache.put("huge", "x" * 20_000)
    assert cache.get("huge") is None
    assert len(cache) == 3


def test_expired_entries_go_when_looked_up_and_before_every_insert() -> None:
    now = [0.0]
    cache: BoundedCache[str, str] = BoundedCache(100, 10**6, clock=lambda: now[0])
    for index in range(10):
        cache.put(f"k{index}", "token", expires=10.0)
    cache.put("long", "token", expires=100.0)
    now[0] = 50.0
    assert cache.get("k0") is None
    cache.put("new", "token", expires=100.0)
    assert len(cache) == 2  # "long" and "new": the nine other expired ones went on insert
    assert cache.bytes == estimate_bytes("long") + estimate_bytes("new") + 2 * estimate_bytes(
        "token"
    )


def test_the_estimate_counts_what_a_model_holds() -> None:
    small = ImageConfig(User="1000")
    large = ImageConfig(User="1000", Cmd=["x" * 10_000])
    assert estimate_bytes(large) - estimate_bytes(small) > 10_000
