"""A real cluster, through the official client's DynamicClient: plain dicts, bounded calls.

Waiting for a state is in ``watching``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

Obj = dict[str, Any]
Ref = tuple[str, str]
"""(apiVersion, kind)"""

CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
NAMESPACE = ("v1", "Namespace")
GENV = ("renku.io/v1alpha1", "GlobalEnvironment")
POD = ("v1", "Pod")
SECRET = ("v1", "Secret")
EVENT = ("v1", "Event")
DEPLOYMENT = ("apps/v1", "Deployment")
FIELD_MANAGER = "renku-env-operator-e2e"
REQUEST_TIMEOUT = 30.0
MERGE_PATCH = "application/merge-patch+json"


class ClusterUnavailableError(Exception):
    """The kubeconfig cannot be loaded, or the API server does not answer."""


def api_message(exc: ApiException) -> str:
    """The message of the API server's Status answer (the raw body if there is none)."""
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
    try:
        document = json.loads(body or "")
    except ValueError:
        return str(body or exc.reason)
    return str(document.get("message") if isinstance(document, dict) else document)


def plain(result: Any) -> Obj:
    """A DynamicClient result (ResourceInstance) as a plain dict."""
    return dict(result.to_dict()) if hasattr(result, "to_dict") else dict(result)


@dataclass
class Cluster:
    """The cluster under test; every call has a timeout."""

    api: client.ApiClient
    dynamic: DynamicClient
    kubeconfig: Path
    version: tuple[int, int] | None
    """(major, minor) of the API server; None when it does not say in digits."""

    @classmethod
    def connect(cls, kubeconfig: Path, cache_dir: Path, *, timeout: float = 15.0) -> Cluster:
        """Load the kubeconfig (its current context) and ask the API server for its version."""
        configuration = client.Configuration()
        try:
            config.load_kube_config(str(kubeconfig), client_configuration=configuration)
        except (ConfigException, OSError, ValueError, TypeError, yaml.YAMLError) as exc:
            raise ClusterUnavailableError(f"cannot use kubeconfig {kubeconfig}: {exc}") from exc
        api = client.ApiClient(configuration)
        try:
            # Raw JSON: the generated model refuses a /version answer with a field missing.
            answer = client.VersionApi(api).get_code(
                _request_timeout=timeout, _preload_content=False
            )
            code = json.loads(answer.data)
        except ApiException as exc:
            message = f"{exc.status} {api_message(exc)}"
            raise ClusterUnavailableError(
                f"the API server at {configuration.host}: {message}"
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterUnavailableError(f"no answer from {configuration.host}: {exc}") from exc
        dynamic = DynamicClient(api, cache_file=str(cache_dir / "discovery.json"))
        version = _version(str(code.get("major", "")), str(code.get("minor", "")))
        return cls(api, dynamic, kubeconfig, version)

    def close(self) -> None:
        """Release the connection pool."""
        self.api.close()

    def resource(self, ref: Ref) -> Any:
        """The API resource serving (apiVersion, kind), by discovery (refreshed on a miss)."""
        return self.dynamic.resources.get(api_version=ref[0], kind=ref[1])

    def get(self, ref: Ref, namespace: str | None, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            found = self.dynamic.get(
                self.resource(ref), name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except NotFoundError:
            return None
        return plain(found)

    def list(
        self, ref: Ref, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[Obj]:
        """The items of a list call."""
        found = self.dynamic.get(
            self.resource(ref),
            namespace=namespace,
            label_selector=label_selector,
            _request_timeout=REQUEST_TIMEOUT,
        )
        return [dict(item) for item in plain(found).get("items") or []]

    def create(self, obj: Obj, *, dry_run: bool = False, strict: bool = False) -> Obj:
        """POST an object; `strict` makes unknown fields an error instead of pruning them."""
        extra: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        if strict:
            extra["query_params"] = [("fieldValidation", "Strict")]
        resource = self.resource((obj["apiVersion"], obj["kind"]))
        namespace = (obj.get("metadata") or {}).get("namespace")
        created = self.dynamic.create(
            resource, body=obj, namespace=namespace, _request_timeout=REQUEST_TIMEOUT, **extra
        )
        return plain(created)

    def apply(self, obj: Obj) -> Obj:
        """Server-side apply as this suite's field manager, taking over conflicting fields."""
        applied = self.dynamic.server_side_apply(
            self.resource((obj["apiVersion"], obj["kind"])),
            body=obj,
            namespace=(obj.get("metadata") or {}).get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            _request_timeout=REQUEST_TIMEOUT,
        )
        return plain(applied)

    def patch(self, ref: Ref, namespace: str | None, name: str, patch: Obj) -> Obj:
        """A JSON merge patch (None removes a key)."""
        patched = self.dynamic.patch(
            self.resource(ref),
            body=patch,
            name=name,
            namespace=namespace,
            content_type=MERGE_PATCH,
            _request_timeout=REQUEST_TIMEOUT,
        )
        return plain(patched)

    def delete(self, ref: Ref, namespace: str | None, name: str) -> bool:
        """Delete (in the background); False when it did not exist."""
        try:
            self.dynamic.delete(
                self.resource(ref), name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except NotFoundError:
            return False
        return True

    def proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        """GET a pod's port through the API server's proxy; ApiException on a non-2xx."""
        core = client.CoreV1Api(self.api)
        answer = core.connect_get_namespaced_pod_proxy_with_path(
            f"{pod}:{port}", namespace, path.lstrip("/"), _request_timeout=REQUEST_TIMEOUT
        )
        return str(answer)


def _version(major: str, minor: str) -> tuple[int, int] | None:
    """("1", "30+") -> (1, 30); managed clusters decorate the minor version."""
    found = [re.match(r"\d+", part) for part in (major, minor)]
    if found[0] is None or found[1] is None:
        return None
    return (int(found[0].group()), int(found[1].group()))
