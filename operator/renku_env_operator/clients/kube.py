"""An async facade over the official (synchronous) `kubernetes` client.

Only the client's configuration loading, authentication and connection pool are used: every
request is built here (`KubeClient.request`) and answered as the API serves it, in plain dicts
(camelCase keys). The generated API classes and models are never imported: building them
costs over 20 MiB (kubernetes 37's pydantic models), and a dict is what the callers want.
Every call runs in a worker thread of this module's own pool (`KUBE_EXECUTOR`), not the loop's
default one: whatever else blocks threads there (a slow DNS lookup, a file read) cannot hold up
claims, status and pods. The client's exceptions never leave this module: they become
`KubeError` and its subclasses.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import functools
import json
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException, OpenApiException
from kubernetes.config.config_exception import ConfigException

from ..api import rules

T = TypeVar("T")
MAX_PROXY_BODY = 2000
MERGE_PATCH = "application/merge-patch+json"
# Threads start on demand; as many as the default pool would have on a small node.
KUBE_EXECUTOR = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kube")


class KubeError(Exception):
    """A Kubernetes API request failed; `status` is None when no answer came back."""

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason


class KubeNotFoundError(KubeError):
    """404: the object does not exist."""


class KubeForbiddenError(KubeError):
    """401/403: the operator's ServiceAccount lacks a permission (the message names it)."""


class KubeConflictError(KubeError):
    """409: the object already exists, or was changed concurrently."""


class ProxyPathRefused(KubeError):
    """A pod-proxy request whose path would leave that pod's proxy prefix: never sent."""


def refuse_off_prefix(path: str, url: str, prefix_url: str) -> None:
    """Refuse a pod-proxy request unless its final path stays under the pod's proxy prefix.

    Checked on the URL as urllib3 will send it (it resolves dot segments while parsing), so
    '/../../secrets' cannot turn a pod GET into a GET of any API path with our credentials.
    """
    if re.search(rules.DOT_SEGMENT_PATTERN, path):
        raise ProxyPathRefused(
            f"the path {path!r} contains a '.' or '..' segment (raw or %2e-encoded): refused, "
            "it could leave the pod proxy"
        )
    prefix = urllib3.util.parse_url(prefix_url).path or "/"
    final = urllib3.util.parse_url(url).path or "/"
    if not final.startswith(prefix):
        raise ProxyPathRefused(
            f"the request path {final!r} leaves the pod-proxy prefix {prefix!r}: refused"
        )


class ProxyResponse(NamedTuple):
    """What a pod answered through the API server's proxy."""

    status: int
    headers: dict[str, str]
    body: str
    """At most 2000 characters."""


class KubeClient:
    """The Kubernetes operations the smoke tests need."""

    def __init__(self, api_client: client.ApiClient, *, request_timeout: float = 30.0) -> None:
        self._api = api_client
        self._timeout = request_timeout

    @classmethod
    def from_environment(
        cls,
        kubeconfig: str | None = None,
        *,
        context: str | None = None,
        request_timeout: float = 30.0,
    ) -> KubeClient:
        """In-cluster config when running in a pod, else the kubeconfig (`$KUBECONFIG`)."""
        configuration = client.Configuration()
        try:
            if kubeconfig is None and context is None:
                try:
                    config.load_incluster_config(client_configuration=configuration)
                except ConfigException:
                    config.load_kube_config(client_configuration=configuration)
            else:
                config.load_kube_config(kubeconfig, context, client_configuration=configuration)
        except (ConfigException, OSError) as exc:
            raise KubeError(f"no usable Kubernetes configuration: {exc}") from exc
        return cls(client.ApiClient(configuration), request_timeout=request_timeout)

    async def close(self) -> None:
        """Release the connection pool."""
        await _in_kube_thread(self._api.close)

    async def create_pod(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a pod; KubeConflictError when the name is taken."""
        return await self.request("POST", _pods(namespace), body=dict(body))

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The pod, or None when it does not exist."""
        try:
            return await self.request("GET", _pods(namespace, name))
        except KubeNotFoundError:
            return None

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """Pods matching a label selector (`a=b,!c`)."""
        result = await self.request(
            "GET", _pods(namespace), query={"labelSelector": label_selector}
        )
        return list(result.get("items") or [])

    async def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod; one that is already gone is fine."""
        try:
            await self.request("DELETE", _pods(namespace, name))
        except KubeNotFoundError:
            return

    async def patch_pod_metadata(
        self,
        namespace: str,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Merge labels and annotations into a pod's metadata."""
        metadata: dict[str, Any] = {}
        if labels:
            metadata["labels"] = dict(labels)
        if annotations:
            metadata["annotations"] = dict(annotations)
        return await self.request(
            "PATCH", _pods(namespace, name), body={"metadata": metadata}, content_type=MERGE_PATCH
        )

    async def stop_pod(self, namespace: str, name: str) -> dict[str, Any]:
        """Stop a pod's containers now, keeping the pod object (and its logs) for `kubectl logs`.

        activeDeadlineSeconds may only be lowered on a running pod; at 1 the kubelet kills the
        containers and the pod ends Failed (DeadlineExceeded), with restartPolicy Always too.
        """
        body = {"spec": {"activeDeadlineSeconds": 1}}
        return await self.request(
            "PATCH", _pods(namespace, name), body=body, content_type=MERGE_PATCH
        )

    async def read_pod_log(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        tail_lines: int = 50,
        *,
        previous: bool = False,
    ) -> str:
        """The last lines of a container's log (of the previous instance with `previous`).

        KubeError with status 400 when there is no such log yet (container still waiting).
        """

        query: dict[str, str] = {"tailLines": str(tail_lines), "previous": str(previous).lower()}
        if container is not None:
            query["container"] = container
        # Text, never parsed: a log line may look like JSON.
        path = _pods(namespace, name) + "/log"
        data = await self._run(
            functools.partial(self._send, "GET", path, query, None, None, accept="*/*")
        )
        return data.decode("utf-8", errors="replace")

    async def list_events_for(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Events about the object named `name`, oldest first."""
        result = await self.request(
            "GET",
            f"/api/v1/namespaces/{quote(namespace, safe='')}/events",
            query={"fieldSelector": f"involvedObject.name={name}"},
        )
        events = list(result.get("items") or [])
        return sorted(events, key=_event_time)

    async def post_event(
        self,
        involved: Mapping[str, Any],
        type_: str,
        reason: str,
        message: str,
        component: str,
    ) -> None:
        """A core Event about `involved` (apiVersion, kind, metadata), in its namespace: for
        work outside kopf's handlers, where kopf's own poster is not available."""
        meta = involved.get("metadata") or {}
        namespace = str(meta.get("namespace"))
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.request(
            "POST", f"/api/v1/namespaces/{quote(namespace, safe='')}/events", body=body
        )

    async def proxy_get(self, namespace: str, pod: str, port: int, path: str) -> ProxyResponse:
        """GET `path` on the pod's port through the API server, without following redirects.

        Any HTTP status is returned, not raised; KubeError only when no answer came back.
        """

        def get() -> ProxyResponse:
            resource = "/api/v1/namespaces/{namespace}/pods/{name}/proxy"
            params = {"namespace": namespace, "name": f"{pod}:{port}"}
            method, url, headers, _, _ = self._api.param_serialize(
                method="GET",
                resource_path=resource + quote(path if path.startswith("/") else f"/{path}"),
                path_params=params,
                header_params={"Accept": "*/*"},
                auth_settings=["BearerToken"],
            )
            prefix = self._api.param_serialize("GET", resource + "/", path_params=params)[1]
            refuse_off_prefix(path, url, prefix)
            # The generated method follows redirects and raises on 4xx/5xx: a raw request.
            response = self._api.rest_client.pool_manager.request(
                method,
                url,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                timeout=urllib3.Timeout(total=self._timeout),
            )
            try:
                body = response.read(MAX_PROXY_BODY * 4, decode_content=True)
            finally:
                response.release_conn()
            text = bytes(body).decode("utf-8", errors="replace")[:MAX_PROXY_BODY]
            return ProxyResponse(response.status, dict(response.headers), text)

        return await self._run(get)

    async def get_secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data, decoded (values that are not UTF-8 are refused)."""
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets/{quote(name, safe='')}"
        secret = await self.request("GET", path)
        try:
            return {
                key: base64.b64decode(value).decode("utf-8")
                for key, value in (secret.get("data") or {}).items()
            }
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise KubeError(f"secret {namespace}/{name} holds a value that is not text") from exc

    async def list_node_architectures(self) -> set[str]:
        """CPU architectures of the cluster's nodes (e.g. amd64, arm64)."""
        result = await self.request("GET", "/api/v1/nodes")
        architectures = set()
        for node in result.get("items") or []:
            arch = (node.get("status") or {}).get("nodeInfo", {}).get("architecture") or (
                (node.get("metadata") or {}).get("labels") or {}
            ).get("kubernetes.io/arch")
            if arch:
                architectures.add(str(arch))
        return architectures

    async def list_one_custom_object(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        *,
        request_timeout: float,
    ) -> None:
        """List at most one object of a custom resource: KubeNotFoundError when the CRD is not
        installed, KubeForbiddenError without permission, KubeError when unreachable."""
        path = custom_path(group, version, plural, namespace)
        await self.request("GET", path, query={"limit": "1"}, request_timeout=request_timeout)

    async def may(self, verb: str, group: str, plural: str, namespace: str | None) -> bool | None:
        """Whether this client may `verb` the resource (a SelfSubjectAccessReview, which every
        authenticated user may create); None when the server cannot tell."""
        attributes = {"verb": verb, "group": group, "resource": plural}
        if namespace is not None:
            attributes["namespace"] = namespace
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        try:
            review = await self.request(
                "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body
            )
        except Exception:  # no answer, or one the client cannot read: cannot tell, go on
            return None
        allowed = (review.get("status") or {}).get("allowed")
        return allowed if isinstance(allowed, bool) else None

    @property
    def server(self) -> str:
        """The API server's address, for messages."""
        return str(self._api.configuration.host)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
    ) -> dict[str, Any]:
        """One API request, JSON in and out; KubeError (or a subclass) for an error answer."""
        call = functools.partial(
            self._send, method, path, query, body, content_type, request_timeout
        )
        data = await self._run(call)
        try:
            answer = json.loads(data) if data else {}
        except ValueError as exc:
            raise KubeError(f"Kubernetes API: {method} {path} answered no JSON") from exc
        if not isinstance(answer, dict):
            raise KubeError(f"Kubernetes API: {method} {path} answered no JSON object")
        return answer

    def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        body: Any,
        content_type: str | None,
        timeout: float | None = None,
        accept: str = "application/json",
    ) -> bytes:
        """The request, in this (worker) thread: the answer's body, or KubeError."""
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        method, url, headers, body, _ = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query.items()) if query else None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(
            method, url, header_params=headers, body=body, _request_timeout=timeout or self._timeout
        )
        data = bytes(response.read() or b"")
        if not 200 <= response.status < 300:
            raise _from_answer(int(response.status), response.reason, data)
        return data

    async def _run(self, function: Callable[[], T]) -> T:
        return await _in_kube_thread(functools.partial(_translated, function))


async def _in_kube_thread(function: Callable[[], T]) -> T:
    """`asyncio.to_thread`, in the Kubernetes client's own pool."""
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(KUBE_EXECUTOR, context.run, function)


def _translated(function: Callable[[], T]) -> T:
    """Call `function`, turning the client's exceptions into ours."""
    try:
        return function()
    except ApiException as exc:
        raise _from_api_exception(exc) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:  # OSError: e.g. the token file
        raise KubeError(f"Kubernetes API unreachable: {exc}") from exc
    except OpenApiException as exc:  # the client refused to build the request
        raise KubeError(f"Kubernetes client: {exc}") from exc


def _from_api_exception(exc: ApiException) -> KubeError:
    body = exc.body.encode() if isinstance(exc.body, str) else (exc.body or b"")
    return _from_answer(int(exc.status) if exc.status else None, exc.reason, body)


def _from_answer(status: int | None, reason: str | None, body: bytes) -> KubeError:
    """The error for an answer with this status and body (the API server's Status, mostly)."""
    message, status_reason = _status_message(body)
    text = f"Kubernetes API: {message or reason or 'request failed'}"
    if status == 404:
        return KubeNotFoundError(text, status=status, reason=status_reason)
    if status in (401, 403):
        return KubeForbiddenError(text, status=status, reason=status_reason)
    if status == 409:
        return KubeConflictError(text, status=status, reason=status_reason)
    return KubeError(text, status=status or None, reason=status_reason)


def _status_message(raw: bytes) -> tuple[str | None, str | None]:
    """The message and reason of the API server's Status body, when there is one."""
    body = raw.decode("utf-8", "replace")
    try:
        document = json.loads(body) if body else None
    except ValueError:
        return (body[:500] if body else None), None
    if not isinstance(document, dict):
        return None, None
    return document.get("message"), document.get("reason")


def _pods(namespace: str, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods"
    return f"{path}/{quote(name, safe='')}" if name else path


def custom_path(
    group: str, version: str, plural: str, namespace: str | None, name: str | None = None
) -> str:
    """The path of a custom resource's collection (or of one object in it)."""
    path = f"/apis/{group}/{version}"
    if namespace is not None:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    return f"{path}/{quote(name, safe='')}" if name else path


def _event_time(event: Mapping[str, Any]) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )
