"""BoundedCache (the LRU map every registry cache is, bounded by entries and by bytes) and
ReadBudget (the bytes of registry answers being read at once)."""

from __future__ import annotations

import asyncio

import pytest

from renku_env_operator.clients.registry_cache import BoundedCache, estimate_bytes
from renku_env_operator.clients.registry_http import ReadBudget
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


async def test_the_read_budget_survives_cancellation_and_keeps_no_empty_entries() -> None:
    budget = ReadBudget(10, per_key=10, small=0)
    order: list[str] = []
    first = budget.reserve(8, "a")
    await first.__aenter__()

    async def reader(name: str, size: int) -> None:
        async with budget.reserve(size, "a"):
            order.append(name)
            await asyncio.sleep(0)

    large = asyncio.create_task(reader("large", 6))
    cancelled = asyncio.create_task(reader("cancelled", 5))
    small = asyncio.create_task(reader("small", 2))  # fits beside the 8 at once
    await asyncio.sleep(0)
    cancelled.cancel()
    await first.__aexit__(None, None, None)
    await asyncio.gather(large, small)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert order == ["small", "large"]
    assert (budget.free, budget._by_key) == (10, {})


async def test_one_registry_holds_at_most_its_part_and_small_answers_never_wait() -> None:
    budget = ReadBudget(16, per_key=8, small=1)
    held = [budget.reserve(4, "drip.example") for _ in range(2)]
    for reservation in held:
        await reservation.__aenter__()  # the dripping registry's part is spent
    waiting = asyncio.create_task(budget.reserve(4, "drip.example").__aenter__())
    await asyncio.sleep(0)
    assert not waiting.done()
    # Another registry's part is its own, and a small answer does not wait at all.
    async with budget.reserve(8, "honest.example"), budget.reserve(1, "honest.example"):
        assert budget.used == 16
    for reservation in held:
        await reservation.__aexit__(None, None, None)
    await waiting
    assert budget.used == 4
