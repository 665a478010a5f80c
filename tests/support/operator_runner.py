"""Run a kopf operator in its own thread against the emulated API server.

Why a thread: the emulator serves on the test's event loop; kopf run as a task on that loop
cancels pytest-asyncio's teardown when it stops. ``kopf.testing.KopfRunner`` does the same.

Usage (``pytest_plugins = [..., "tests.support.operator_runner"]``)::

    async def test_x(kube: Kube, kube_env: Path) -> None:
        def target(stop_flag: threading.Event, ready_flag: threading.Event) -> None:
            run_operator(settings, stop_flag=stop_flag, ready_flag=ready_flag)

        async with OperatorThread(target):
            await kube.wait_watching(GENV, "renku")  # kopf's watch is live: now create objects
            ...

kopf settings needed against the emulator (``configure_for_emulator`` sets them):

- ``scanning.disabled = True`` and explicit namespaces (``kopf.run(namespaces=[...])``): no CRD
  or namespace observation, fewer requests (TOOLING.md gap 1);
- ``peering.standalone = True``: no ``kopf.dev`` peering resources;
- short watch/network timeouts and backoffs, so that reconnects and stops take milliseconds.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import kopf
import kubernetes.client
import kubernetes.config.kube_config
import pytest

from tests.support.kube import Kube

OperatorTarget = Callable[[threading.Event, threading.Event], None]


def configure_for_emulator(settings: kopf.OperatorSettings) -> kopf.OperatorSettings:
    """Apply the kopf settings the emulator needs (see the module docstring); return them."""
    settings.scanning.disabled = True
    settings.peering.standalone = True
    settings.watching.server_timeout = 10  # the emulator ends a watch after timeoutSeconds
    settings.watching.client_timeout = 15
    settings.watching.connect_timeout = 2
    settings.watching.reconnect_backoff = 0.05
    settings.networking.request_timeout = 10
    settings.networking.connect_timeout = 2
    settings.networking.error_backoffs = (0.05, 0.1, 0.2)
    settings.queueing.idle_timeout = 0.5
    settings.queueing.exit_timeout = 0.5
    # A timer spawned by a watch event during shutdown is waited for this long.
    settings.process.ultimate_exiting_timeout = 0.5
    return settings


class _ReadyFlag(threading.Event):
    """A threading.Event that also calls ``on_set`` (from the setting thread) when set."""

    def __init__(self, on_set: Callable[[], None]) -> None:
        super().__init__()
        self.on_set = on_set

    def set(self) -> None:
        super().set()
        self.on_set()


class OperatorThread:
    """Runs ``target(stop_flag, ready_flag)`` in a thread; an async context manager.

    Entering starts it and awaits readiness (failing early if the thread dies first); exiting
    sets the stop flag, awaits the thread's end and re-raises what the thread raised.
    """

    def __init__(
        self,
        target: OperatorTarget,
        *,
        name: str = "operator",
        ready_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.target = target
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.stop_flag = threading.Event()
        self.ready_flag = _ReadyFlag(lambda: self._resolve(self._ready, None))
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        # Resolved from the thread, awaited on the test's loop (set up in start()).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[None] | None = None
        self._finished: asyncio.Future[None] | None = None

    def _resolve(self, future: asyncio.Future[None] | None, error: BaseException | None) -> None:
        def resolve() -> None:
            if future is None or future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(resolve)

    def _main(self) -> None:
        try:
            self.target(self.stop_flag, self.ready_flag)
        except BaseException as e:  # handed over to the test's thread, re-raised there
            self._resolve(self._finished, e)
        else:
            self._resolve(self._finished, None)

    def start(self) -> None:
        """Start the thread (call on the test's event loop)."""
        self._loop = asyncio.get_running_loop()
        self._ready, self._finished = self._loop.create_future(), self._loop.create_future()
        self.thread.start()

    async def __aenter__(self) -> Self:
        self.start()
        await self.wait_ready()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_ready(self) -> None:
        """Await the ready flag; raise the thread's exception if it ends before that."""
        if self._ready is None or self._finished is None:
            raise RuntimeError("the operator thread was not started")
        waiting = {self._ready, self._finished}
        done, _ = await asyncio.wait(
            waiting, timeout=self.ready_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if self._finished in done:
            await self._finished  # re-raises the operator's exception, if any
            raise RuntimeError("the operator exited before it was ready")
        if self._ready not in done:
            await self.stop()
            raise TimeoutError(f"the operator was not ready within {self.ready_timeout}s")

    async def stop(self) -> None:
        """Set the stop flag, await the thread's end, re-raise its exception."""
        if self._finished is None:
            raise RuntimeError("the operator thread was not started")
        self.stop_flag.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._finished), self.stop_timeout)
        except TimeoutError:
            raise RuntimeError(f"the operator did not stop in {self.stop_timeout}s") from None
        await asyncio.to_thread(self.thread.join)


@pytest.fixture
def kube_env(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point KUBECONFIG (and the official client's defaults) at the emulator, as in production.

    ``kubernetes.config`` reads $KUBECONFIG once, at import: the default location is patched
    too. The in-cluster variables are removed so that kopf's login falls back to kubeconfig.
    """
    path = str(kube.kubeconfig_path)
    monkeypatch.setenv("KUBECONFIG", path)
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", path)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    # load_kube_config() sets a process-wide default: restore the previous one afterwards.
    configuration = kubernetes.client.Configuration
    monkeypatch.setattr(configuration, "_default", configuration._default)
    return kube.kubeconfig_path
