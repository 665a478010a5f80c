"""Idle connections to the metrics endpoint: prometheus_client's threaded server (what the
operator used before issue 19 finding 8) beside the operator's MetricsServer. Prints figures,
asserts nothing.

    .venv/bin/python -m tests.bench_metrics_idle [connections]
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time

import httpx
from prometheus_client import start_http_server

from renku_env_operator.metrics_http import MetricsServer

TIMEOUT = 1.0  # the new server's METRICS_TIMEOUT_SECONDS here


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def measure(name: str, port: int, count: int) -> None:
    threads = threading.active_count()
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    await asyncio.sleep(0.5)  # a benchmark: let the old server's threads start
    started = time.perf_counter()
    async with httpx.AsyncClient() as client:
        status = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=30)).status_code
    scrape = time.perf_counter() - started
    print(
        f"{name}: {count} idle connections -> {threading.active_count() - threads} more "
        f"threads; a scrape meanwhile: HTTP {status} in {scrape * 1000:.1f} ms"
    )
    await asyncio.sleep(3 * TIMEOUT)
    ended = sum(reader.at_eof() for reader, _ in connections)
    print(f"{name}: after {3 * TIMEOUT:.0f} s, {ended} of {count} closed by the server")
    for _, writer in connections:
        writer.close()


async def main(count: int) -> None:
    old = free_port()
    start_http_server(old, addr="127.0.0.1")
    await measure("prometheus_client.start_http_server", old, count)
    server = MetricsServer(0, host="127.0.0.1", timeout=TIMEOUT)
    await server.start()
    await measure(f"MetricsServer (limit {server.max_connections})", server.port, count)
    print(f"MetricsServer: {len(server.open)} connections open at the end")
    await server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
