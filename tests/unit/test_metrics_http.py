"""The metrics server's bounds, on the test's loop (issue 19 finding 8)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry, Counter

from renku_env_operator.config import Settings
from renku_env_operator.metrics_http import MetricsServer
from renku_env_operator.runner import StartupError, operate_with_metrics

LIMIT = 4
BOUND = 10.0  # far above the server's timeout: what the tests wait at most


@pytest_asyncio.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[MetricsServer]:
    registry = CollectorRegistry()
    Counter("demo_total", "A counter.", registry=registry).inc()
    timeout = getattr(request, "param", 0.3)
    served = MetricsServer(
        0, host="127.0.0.1", timeout=timeout, max_connections=LIMIT, registry=registry
    )
    await served.start()
    yield served
    await served.stop()


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(server: MetricsServer, count: int) -> list[Connection]:
    return [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(count)]


async def ended(reader: asyncio.StreamReader) -> bytes:
    """All the server sent until it closed or aborted the connection (a reset, if the kernel
    sends one)."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b"<reset>"


async def close(connections: list[Connection]) -> None:
    for _, writer in connections:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in connections), return_exceptions=True)


async def scrape(server: MetricsServer, path: str = "/metrics") -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{server.port}{path}", timeout=BOUND)


async def test_serves_the_registry_at_metrics_only(server: MetricsServer) -> None:
    response = await scrape(server)
    assert response.status_code == 200
    assert "demo_total 1.0" in response.text
    assert response.headers["connection"] == "close"  # one request per connection
    assert (await scrape(server, "/other")).status_code == 404


async def test_more_idle_connections_than_the_limit_stay_bounded_and_a_scrape_gets_in(
    server: MetricsServer,
) -> None:
    idle = await connect(server, 50)
    try:
        response = await scrape(server)
        assert response.status_code == 200
        assert len(server.open) <= LIMIT
        # Every idle one is closed: evicted at once, or after the timeout.
        ends = await asyncio.wait_for(asyncio.gather(*(ended(r) for r, _ in idle)), timeout=BOUND)
        assert set(ends) <= {b"", b"<reset>"}
    finally:
        await close(idle)
    assert server.open == {}


async def test_a_slow_request_is_closed_after_the_timeout(server: MetricsServer) -> None:
    [(reader, writer)] = await connect(server, 1)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # the headers never end
    try:
        assert await asyncio.wait_for(ended(reader), timeout=BOUND) in {b"", b"<reset>"}
    finally:
        await close([(reader, writer)])


async def until(check: Callable[[], bool]) -> None:
    """Let the loop run (the server is on it) until `check` holds."""
    async with asyncio.timeout(BOUND):
        while not check():
            await asyncio.sleep(0)


@pytest.mark.parametrize("server", [BOUND], indirect=True)  # no timeout closes within the test
async def test_when_full_an_idle_connection_goes_before_one_that_sent_something(
    server: MetricsServer,
) -> None:
    talking = await connect(server, 1)
    talking[0][1].write(b"GET /metrics HTTP/1.1\r\n")  # oldest, but it has begun a request
    await until(lambda: any(c.heard for c in server.open))
    silent = await connect(server, LIMIT - 1)
    await until(lambda: len(server.open) == LIMIT)
    [first_talking, first_silent, *_] = list(server.open)
    try:
        newcomer = await connect(server, 1)
        assert await asyncio.wait_for(ended(silent[0][0]), timeout=BOUND) == b""  # evicted
        assert first_silent not in server.open
        assert first_talking in server.open  # older, but it had begun a request
        assert len(server.open) == LIMIT
        await close(newcomer)
    finally:
        await close(talking + silent)


@pytest.mark.parametrize("method", ["HEAD", "GET"])
async def test_methods(server: MetricsServer, method: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.request(method, f"http://127.0.0.1:{server.port}/metrics")
    assert response.status_code == 200


async def test_a_port_in_use_is_a_start_up_error_that_says_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(metrics_port=port, renku_url=None)
        with pytest.raises(StartupError, match=f"cannot serve metrics on port {port}") as caught:
            await operate_with_metrics(settings)
    assert "RENKU_ENV_OPERATOR_METRICS_PORT" in str(caught.value)
