"""KubeEmulator: kmock's Kubernetes emulator with the server-side semantics of a real API server.

kmock 0.8 stores bodies verbatim and mutates state before any reaction runs. This subclass:

- fills ``uid``, ``resourceVersion`` (one global counter, bumped on every write, status writes
  included), ``generation`` (1 at create; bumped when anything outside metadata/status changes,
  and once when ``deletionTimestamp`` is set, as the real server does), ``creationTimestamp``,
  ``generateName``;
- answers real ``Status`` errors: 404 NotFound, 409 AlreadyExists/Conflict, 422 on a failed
  JSON-patch ``test`` op, 415 for strategic-merge patches on custom resources;
- honours the status subresource, finalizers + ``deletionTimestamp``, no-op patches (no new
  resourceVersion, no event), PUT (replace), label/field selectors on list and watch;
- keeps one ordered event log (``kube_watch``), so a watch from ``resourceVersion=N`` replays what
  happened after N (nothing lost between kopf's list and watch), honours ``timeoutSeconds``;
- parses ``/api/v1/namespaces[/name]`` (kmock 0.8 answers 500 there), so Namespaces work;
- mutates state only in its fallback reactions: a reaction injected by a test (``emulator['patch',
  ...] << 500``) fails the request without changing anything, as a failed request would.

Pod sub-resources ``log`` and ``proxy`` live in ``kube_pods``.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import parsing
from kmock._internal.rendering import Response  # kmock.Response, not in its __all__

from tests.support import kube_meta as meta
from tests.support import kube_pods, kube_watch
from tests.support.kube_meta import Obj
from tests.support.kube_watch import EventLog, WatchEvent

ObjKey = tuple[kmock.resource, str | None, str]

_kmock_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    """kmock 0.8 crashes (500) on ``/api/v1/namespaces[/name[/status]]``: parse those here."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 5:
        name, sub = [*parts[3:], None, None][:2]
        if sub in (None, "status", "finalize"):
            return parsing.ParsedPath("", "v1", "namespaces", None, name, sub)
    return _kmock_parse_path(path)


# kmock's request parser calls parsing.parse_path at request time: this fixes it process-wide.
parsing.parse_path = _parse_path

# Built-in groups: strategic-merge patches work there; custom resources refuse them (415).
BUILTIN_GROUPS = frozenset({"", "apps", "batch", "events.k8s.io", "coordination.k8s.io"})


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """The emulated API server (an aiohttp handler; serve it with ``kmock.Server``)."""

    pods: kube_pods.PodSideband = attrs.field(factory=kube_pods.PodSideband, init=False)
    log: EventLog = attrs.field(factory=EventLog, init=False)
    _rv: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        # The scaffold's discovery endpoints, then our fallbacks instead of kmock's emulator ones.
        kmock.KubernetesScaffold.__attrs_post_init__(self)
        self.fallback[kmock.action.LIST] << self._serve_list
        self.fallback[kmock.action.WATCH] << self._serve_watch
        self.fallback[kmock.action.FETCH] << self._serve_fetch
        self.fallback[kmock.action.CREATE] << 201 << self._serve_create  # 201 Created, as real
        self.fallback[kmock.action.UPDATE] << self._serve_update
        self.fallback[kmock.action.DELETE] << self._serve_delete
        self.fallback[kmock.method.PUT] << self._serve_replace

    # -- plumbing ---------------------------------------------------------------------------

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # Pod logs/proxy answer text or arbitrary bytes, which kmock reactions cannot render.
        if kube_pods.is_sideband(request):
            return self.pods.serve(request, self._current(kube_pods.PODS, request.namespace))
        # Skip KubernetesEmulator._handle: it mutates state before reactions; our fallbacks do.
        return await super(kmock.KubernetesEmulator, self)._handle(request)

    def info(self, resource: kmock.resource | None) -> kmock.ResourceInfo:
        """Discovery info of a served resource, or a 404 like the real server's."""
        if resource is None or resource not in self.resources:
            raise meta.unknown_resource()
        return self.resources[resource]

    def peek(self, resource: kmock.resource, namespace: str | None, name: str) -> Obj | None:
        """The current state of an object (a deep copy), or None if absent or deleted."""
        key = (resource, namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def _current(self, resource: kmock.resource, namespace: str | None) -> Callable[[str], Obj]:
        def get(name: str) -> Obj:
            obj = self.peek(resource, namespace, name)
            if obj is None:
                raise meta.not_found(resource, name)
            return obj

        return get

    def _key(self, request: kmock.Request) -> tuple[kmock.resource, ObjKey, Obj]:
        resource = request.resource
        self.info(resource)
        if resource is None or request.name is None:
            raise meta.bad_request("a name is required")
        old = self.peek(resource, request.namespace, request.name)
        if old is None:
            raise meta.not_found(resource, request.name)
        return resource, (resource, request.namespace, request.name), old

    async def _record(self, key: ObjKey, kind: str, obj: Obj) -> Obj:
        """Store a new state (or a deletion), log the event for watchers, wake up the waiters."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if kind == "ADDED" and key in self.objects:
            self.objects[key].create(obj)
        elif kind == "ADDED":
            self.objects[key] = obj
        elif kind == "MODIFIED":
            self.objects[key].history.append(obj)
        else:
            self.objects[key].delete()
        await self.log.append(WatchEvent(self._rv, key[0], kind, copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    # -- writes -----------------------------------------------------------------------------

    async def _serve_create(self, request: kmock.Request) -> Obj:
        info = self.info(request.resource)
        resource = request.resource
        if resource is None or not isinstance(request.data, dict):
            raise meta.bad_request("the body must be a JSON object")
        obj: Obj = copy.deepcopy(request.data)
        metadata = obj.setdefault("metadata", {})
        if request.namespace and metadata.get("namespace", request.namespace) != request.namespace:
            raise meta.bad_request("the namespace of the object does not match the request's")
        if not metadata.get("name") and not metadata.get("generateName"):
            raise meta.invalid(resource, "", "metadata.name: Required value")
        if metadata.get("name") and self.peek(resource, request.namespace, metadata["name"]):
            raise meta.already_exists(resource, metadata["name"])
        obj.setdefault("apiVersion", "/".join(filter(None, [resource.group, resource.version])))
        obj.setdefault("kind", info.kind)
        meta.fill_created(obj, namespace=request.namespace, rv=self._rv + 1)
        if "status" in info.subresources:  # the real server ignores status on create
            obj.pop("status", None)
        if resource == kube_pods.PODS:
            obj["status"] = kube_pods.initial_status(obj)
        return await self._record((resource, request.namespace, metadata["name"]), "ADDED", obj)

    async def _serve_update(self, request: kmock.Request) -> Obj:
        resource, key, old = self._key(request)
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        data = request.data
        if content_type == "application/json-patch+json" and isinstance(data, list):
            new = meta.json_patch(resource, key[2], old, data)
        elif content_type in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            if (
                content_type.startswith("application/strategic")
                and resource.group not in BUILTIN_GROUPS
            ):
                raise meta.unsupported_media(content_type)
            if not isinstance(data, dict):
                raise meta.bad_request("a merge patch must be a JSON object")
            self._check_precondition(resource, old, data)
            new = meta.merge_patch(old, data)
        else:
            raise meta.unsupported_media(content_type or "none")
        return await self._update(key, old, new, request.subresource)

    async def _serve_replace(self, request: kmock.Request) -> Obj:
        resource, key, old = self._key(request)
        if not isinstance(request.data, dict):
            raise meta.bad_request("the body must be a JSON object")
        self._check_precondition(resource, old, request.data)
        return await self._update(key, old, copy.deepcopy(request.data), request.subresource)

    def _check_precondition(self, resource: kmock.resource, old: Obj, body: Obj) -> None:
        wanted = meta.dig(body, "metadata.resourceVersion")
        if wanted is not None and wanted != old["metadata"]["resourceVersion"]:
            raise meta.conflict(resource, old["metadata"]["name"])

    async def _update(self, key: ObjKey, old: Obj, new: Obj, subresource: str | None) -> Obj:
        info = self.info(key[0])
        if subresource == "status":  # only the status changes through the subresource
            new = {**copy.deepcopy(old), "status": new.get("status")}
        elif subresource is not None:
            raise meta.not_found(key[0], f"{key[2]}/{subresource}")
        elif "status" in info.subresources:  # ... and never through the main resource
            new["status"] = copy.deepcopy(old.get("status"))
        if new.get("status") is None:
            new.pop("status", None)
        meta.keep_server_owned(old, new)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:  # a no-op write: no new resourceVersion, no watch event
            return old
        self._check_finalizers(key, old, new)
        if meta.spec_changed(old, new):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        result = await self._record(key, "MODIFIED", new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            await self._record(key, "DELETED", copy.deepcopy(result))  # released: really gone
        return result

    def _check_finalizers(self, key: ObjKey, old: Obj, new: Obj) -> None:
        added = meta.added_finalizers(old, new)
        if old["metadata"].get("deletionTimestamp") and added:
            cause = (
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object "
                f"is being deleted, found new finalizers {added}"
            )
            raise meta.invalid(key[0], key[2], cause)

    async def _serve_delete(self, request: kmock.Request) -> Response:
        # 200 when gone at once, 202 Accepted when finalizers keep it (as the real server).
        # The reaction adopts this status per request; no await between adopting and rendering.
        _, key, old = self._key(request)
        preconditions = (request.data or {}).get("preconditions") or {}
        self._check_precondition(key[0], old, {"metadata": preconditions})
        metadata = old["metadata"]
        if metadata.get("deletionTimestamp"):  # already being deleted: nothing changes
            return Response(status=202, payload=old)
        if metadata.get("finalizers"):  # finalizers block: mark for deletion, bump generation
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = meta.now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["generation"] = metadata.get("generation", 1) + 1
            return Response(status=202, payload=await self._record(key, "MODIFIED", new))
        return Response(status=200, payload=await self._record(key, "DELETED", old))

    # -- reads ------------------------------------------------------------------------------

    def _select(self, request: kmock.Request) -> list[Obj]:
        return [
            raw
            for (resource, _, _), obj in self.objects.items()
            if resource == request.resource and not obj.deleted
            for raw in [copy.deepcopy(obj.raw)]
            if kube_watch.selected(request, raw)
        ]

    async def _serve_fetch(self, request: kmock.Request) -> Obj:
        _, _, obj = self._key(request)
        if request.subresource not in (None, "status"):
            raise meta.not_found(
                request.resource or kmock.resource(), f"{request.name}/{request.subresource}"
            )
        return obj

    async def _serve_list(self, request: kmock.Request) -> Obj:
        info = self.info(request.resource)
        resource = request.resource or kmock.resource()
        return {
            "apiVersion": "/".join(filter(None, [resource.group, resource.version])),
            "kind": f"{info.kind}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": self._select(request),
        }

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        # Checks before the first chunk: an error is still a plain answer, not a stream error.
        self.info(request.resource)
        since = request.params.get("resourceVersion", "")
        if since and not since.isdigit():
            raise meta.bad_request(f"invalid resourceVersion {since!r}")
        yield b""  # send the headers now: the client waits for them before anything happens
        initial = since in ("", "0") or request.params.get("sendInitialEvents") == "true"
        # The cursor and the snapshot are taken together (no await between): nothing is lost.
        cursor = len(self.log.entries) if initial else self.log.cursor_after(int(since))
        snapshot = self._select(request) if initial else []
        async for event in self.log.watch(request, cursor, snapshot, self._rv):
            yield event
