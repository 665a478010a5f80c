"""The real operator's metrics endpoint under idle connections (issue 19 finding 8).

prometheus_client's threaded server kept one thread per idle connection, for ever: 300 idle
connections from any pod were 302 threads. Now no connection costs a thread, idle ones are
closed after METRICS_TIMEOUT_SECONDS, and a scrape gets through while they are open.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import httpx

from tests.support.kube import Kube

IDLE = 300
TIMEOUT = 0.5  # METRICS_TIMEOUT_SECONDS: short, so that the test awaits the closes quickly
BOUND = 30.0  # what the test waits at most for them (far above TIMEOUT)
SLACK = 10  # threads the operator may start meanwhile, whatever the connections


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Await the server's end of the connection: EOF (closed) or a reset (aborted)."""
    try:
        return await reader.read() == b""
    except ConnectionResetError:
        return True


async def test_idle_connections_cost_no_thread_are_closed_and_leave_scrapes_working(
    kube: Kube, start_operator: Any
) -> None:
    port = free_port()
    await start_operator(
        metrics_port=port, metrics_timeout_seconds=TIMEOUT, metrics_max_connections=16
    )
    threads = threading.active_count()

    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(IDLE)]
    try:
        async with httpx.AsyncClient() as client:
            scrape = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=BOUND)
        assert scrape.status_code == 200
        assert "renku_env_operator_build_info" in scrape.text
        # The old server: one thread per connection (309 here). The slack is for the operator's
        # own executor threads, which may grow meanwhile.
        assert threading.active_count() <= threads + SLACK

        closes = [closed_by_server(reader) for reader, _ in connections]
        assert all(await asyncio.wait_for(asyncio.gather(*closes), timeout=BOUND))
    finally:
        for _, writer in connections:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for _, w in connections), return_exceptions=True)

    # A fresh scrape after all that: the endpoint is still there.
    async with httpx.AsyncClient() as client:
        again = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=BOUND)
    assert again.status_code == 200
    assert again.headers["content-type"].startswith("text/plain")
