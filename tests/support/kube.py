"""The ``kube`` fixture: an emulated Kubernetes API server with helpers and event-driven waiters.

Usage (``pytest_plugins = ["tests.support.kube"]`` in a conftest)::

    async def test_something(kube: Kube) -> None:
        await kube.create(genv_body)
        obj = await kube.wait_for(GENV, "ns", "name", lambda o: dig(o, "status.phase") == "Ready")

The server is ``KubeEmulator`` (see ``kube_emulator``); ``kube.emulator`` also offers kmock's DSL
for fault injection (``kube.emulator["patch", kmock.resource(...)] << 500``) and assertions
(``kube.emulator.objects``; requests by iterating views like ``kube.emulator["patch"]``).
Waiters wake up on every write of the emulator (an ``asyncio.Condition``), never by polling.
"""

from __future__ import annotations

import asyncio
import builtins
import importlib.resources
import json
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import kmock
import pytest_asyncio

from tests.support.kube_emulator import KubeEmulator
from tests.support.kube_meta import Obj, dig
from tests.support.kube_pods import PODS, ProxyAnswer

GENV = kmock.resource("renku.io", "v1alpha1", "globalenvironments")
CLAIMS = kmock.resource("renku.io", "v1alpha1", "globalenvironmentclaims")
EVENTS = kmock.resource("", "v1", "events")
SECRETS = kmock.resource("", "v1", "secrets")
__all__ = ["CLAIMS", "EVENTS", "GENV", "PODS", "SECRETS", "Kube", "KubeApiError", "dig", "kube"]

ResourceRef = kmock.resource | str
BUNDLED = "resources.json.gz"  # the built-in kinds kmock ships (from a recent K3s)
T = TypeVar("T")


@attrs.define
class KubeApiError(Exception):
    """A non-2xx answer to one of the helpers; ``body`` is the server's ``Status`` (or text)."""

    status: int
    body: Any

    @property
    def reason(self) -> str | None:
        """The ``Status.reason`` (``NotFound``, ``Conflict``, ...) if the body is a Status."""
        return self.body.get("reason") if isinstance(self.body, dict) else None


def make_emulator(factory: Callable[[], KubeEmulator] = KubeEmulator) -> KubeEmulator:
    """The emulator with the built-in kinds and the operator's two CRDs registered.

    ``factory`` makes the emulator (a subclass, e.g. the benchmark's counting one).
    """
    emulator = factory()
    # load_bundled() uses a deprecated importlib API (an error under filterwarnings=error).
    emulator.resources.load_path(Path(str(importlib.resources.files("kmock._internal"))) / BUNDLED)
    emulator.resources[GENV] = kmock.ResourceInfo(
        kind="GlobalEnvironment",
        singular="globalenvironment",
        shortnames={"genv"},
        namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        subresources={"status"},
    )
    emulator.resources[CLAIMS] = kmock.ResourceInfo(
        kind="GlobalEnvironmentClaim",
        singular="globalenvironmentclaim",
        namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        subresources=set(),
    )
    return emulator


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig for the emulator (JSON is valid YAML), with a dummy bearer token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "kmock", "user": {"token": "dummy-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
        "current-context": "kmock",
    }
    path.write_text(json.dumps(config, indent=2))
    return path


@attrs.define
class Kube:
    """Helpers over a running emulator: HTTP calls like a client makes, waiters, pod answers."""

    emulator: KubeEmulator
    server: kmock.Server
    kubeconfig_path: Path

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        return str(self.server.url).rstrip("/")

    def resource(self, ref: ResourceRef) -> kmock.resource:
        """Parse ``"v1/pods"`` / ``"renku.io/v1alpha1/globalenvironments"`` into a resource."""
        return ref if isinstance(ref, kmock.resource) else kmock.resource(ref)

    def resource_of(self, obj: Mapping[str, Any]) -> kmock.resource:
        """The resource serving an object's ``apiVersion`` + ``kind``."""
        group, _, version = obj["apiVersion"].rpartition("/")
        for resource in self.emulator.resources:
            info = self.emulator.resources[resource]
            if (resource.group, resource.version, info.kind) == (group, version, obj["kind"]):
                return resource
        raise LookupError(f"no resource serves {obj['apiVersion']} {obj['kind']}")

    def path(self, ref: ResourceRef, namespace: str | None, name: str = "", sub: str = "") -> str:
        """The API path of a collection, an object or an object's sub-resource."""
        res = self.resource(ref)
        base = f"/api/{res.version}" if not res.group else f"/apis/{res.group}/{res.version}"
        parts = [base, f"namespaces/{namespace}" if namespace else "", str(res.plural), name, sub]
        return "/".join(part for part in parts if part)

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """One HTTP call to the emulator; raises ``KubeApiError`` on a non-2xx answer."""
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type}
        client = self.server.client
        async with client.request(method, path, data=data, headers=headers, params=params) as rsp:
            text = await rsp.text()
            is_json = rsp.content_type == "application/json"
            payload = json.loads(text) if is_json and text else text
            if rsp.status >= 400:
                raise KubeApiError(rsp.status, payload)
            return payload

    async def create(self, obj: Mapping[str, Any]) -> Obj:
        """POST an object (resource from apiVersion/kind, namespace from its metadata)."""
        namespace = obj.get("metadata", {}).get("namespace")
        created: Obj = await self.request("POST", self.path(self.resource_of(obj), namespace), obj)
        return created

    async def get(self, ref: ResourceRef, namespace: str | None, name: str) -> Obj:
        """GET an object; a missing one raises ``KubeApiError`` with status 404."""
        found: Obj = await self.request("GET", self.path(ref, namespace, name))
        return found

    async def patch(
        self,
        ref: ResourceRef,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any] | list[Any],
        *,
        subresource: str = "",
    ) -> Obj:
        """PATCH: a list is a JSON patch, a dict a merge patch (``subresource="status"``)."""
        kind = "json-patch" if isinstance(patch, list) else "merge-patch"
        path = self.path(ref, namespace, name, subresource)
        patched: Obj = await self.request(
            "PATCH", path, patch, content_type=f"application/{kind}+json"
        )
        return patched

    async def delete(self, ref: ResourceRef, namespace: str | None, name: str) -> Obj:
        """DELETE; with finalizers the object stays, marked with ``deletionTimestamp``."""
        deleted: Obj = await self.request("DELETE", self.path(ref, namespace, name))
        return deleted

    async def list(
        self, ref: ResourceRef, namespace: str | None = None, *, label_selector: str = ""
    ) -> builtins.list[Obj]:
        """The items of a list call (in one namespace or cluster-wide)."""
        params = {"labelSelector": label_selector} if label_selector else None
        listed: Obj = await self.request("GET", self.path(ref, namespace), params=params)
        items: builtins.list[Obj] = listed["items"]
        return items

    def events_for(self, name: str, namespace: str | None = None) -> builtins.list[Obj]:
        """Stored core Events whose ``involvedObject.name`` is ``name``, oldest first."""
        return [
            obj
            for (res, ns, _), stored in self.emulator.objects.items()
            if res == EVENTS and not stored.deleted and namespace in (None, ns)
            for obj in [stored.raw]
            if dig(obj, "involvedObject.name") == name
        ]

    def peek(self, ref: ResourceRef, namespace: str | None, name: str) -> Obj | None:
        """The current state without a request (a copy), or None if absent."""
        return self.emulator.peek(self.resource(ref), namespace, name)

    async def until(
        self, check: Callable[[], T | None], *, timeout: float, what: Callable[[], str]
    ) -> T:
        """Await until ``check()`` returns non-None, re-checking after every write."""
        changed = self.emulator.log.changed
        try:
            async with asyncio.timeout(timeout), changed:
                while (result := check()) is None:
                    await changed.wait()
                return result
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what()}") from None

    async def wait_for(
        self,
        ref: ResourceRef,
        namespace: str | None,
        name: str,
        predicate: Callable[[Obj], bool] = lambda _: True,
        *,
        timeout: float = 5.0,
    ) -> Obj:
        """Await the first state of the object for which ``predicate`` is true; return it."""

        def check() -> Obj | None:
            obj = self.peek(ref, namespace, name)
            return obj if obj is not None and predicate(obj) else None

        def what() -> str:
            return f"{ref} {namespace}/{name}; its last state: {self.peek(ref, namespace, name)}"

        return await self.until(check, timeout=timeout, what=what)

    async def wait_gone(
        self, ref: ResourceRef, namespace: str | None, name: str, *, timeout: float = 5.0
    ) -> None:
        """Await the object's removal (DELETE without finalizers, or finalizers released)."""

        def check() -> bool | None:
            return True if self.peek(ref, namespace, name) is None else None

        await self.until(
            check, timeout=timeout, what=lambda: f"{ref} {namespace}/{name} to be gone"
        )

    async def wait_event(
        self, name: str, reason: str, *, namespace: str | None = None, timeout: float = 5.0
    ) -> Obj:
        """Await an Event about object ``name`` with ``reason``; return the first such Event."""

        def check() -> Obj | None:
            found = [e for e in self.events_for(name, namespace) if e.get("reason") == reason]
            return found[0] if found else None

        return await self.until(check, timeout=timeout, what=lambda: f"event {reason} for {name}")

    async def wait_watching(
        self, ref: ResourceRef, namespace: str | None = None, *, timeout: float = 5.0
    ) -> None:
        """Await a live watch on the resource (in ``namespace``, or cluster-wide if None)."""
        res = self.resource(ref)

        def check() -> bool | None:
            watches = self.emulator.log.active_watches
            hit = any(w.resource == res and w.namespace == namespace for w in watches)
            return True if hit else None

        await self.until(check, timeout=timeout, what=lambda: f"a watch on {res} in {namespace}")

    def set_pod_logs(
        self, namespace: str, name: str, current: str | None, previous: str | None = None
    ) -> None:
        """What ``pods/log`` answers (``previous`` for ``?previous=true``)."""
        self.emulator.pods.set_logs(namespace, name, current, previous)

    def set_proxy_answer(
        self, namespace: str, name: str, port: int, answer: ProxyAnswer, path: str | None = None
    ) -> None:
        """What ``pods/{name}:{port}/proxy{path}`` answers (any path if None)."""
        self.emulator.pods.set_proxy(namespace, name, port, answer, path)


@pytest_asyncio.fixture
async def kube(tmp_path: Path) -> AsyncIterator[Kube]:
    """A fresh emulated API server per test, with a kubeconfig in ``tmp_path``."""
    emulator = make_emulator()
    async with emulator, kmock.Server(emulator) as server:
        config = write_kubeconfig(tmp_path / "kubeconfig", str(server.url).rstrip("/"))
        yield Kube(emulator, server, config)
        # API errors (404, 409, ...) are answers; anything else is a bug in the emulator.
        crashes = [e for e in emulator.errors if not isinstance(e, kmock.KubernetesError)]
        if crashes:
            raise ExceptionGroup("the emulated API server crashed", crashes)
