"""The SessionUrl check: does the session's server answer where Renku sends its users?

Pure. The request goes through the API server's pod proxy (the operator need not reach pod IPs),
so the API server's own errors and its rewriting of redirects are taken out before judging.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..api.status import CheckResult, CheckStatus

_PROXY_PREFIX = re.compile(r"^/api/v1/namespaces/[^/]+/pods/[^/]+/proxy(?=/|$)")


def session_url_path(base_path: str, default_url: str, strip_path_prefix: bool) -> str:
    """The path the session's server receives when a user opens the session.

    Renku opens `<base path>/<default_url>`; with strip_path_prefix its proxy removes that
    prefix, so the server sees `/` (SESSIONS.md "strip_path_prefix").
    """
    if strip_path_prefix:
        return "/"
    return f"{base_path.rstrip('/')}/{default_url.lstrip('/')}"


def unproxied_location(location: str) -> str:
    """A Location header without the API server's pod-proxy prefix.

    The API server rewrites a pod's absolute redirects to stay behind its proxy
    (`/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/...`); what the pod said is the rest.
    """
    parts = urlsplit(location)
    match = _PROXY_PREFIX.match(parts.path)
    if match is None:
        return location
    rest = parts.path[match.end() :] or "/"
    return f"{rest}?{parts.query}" if parts.query else rest


def api_server_error(status: int, headers: Mapping[str, str], body: str) -> str | None:
    """The API server's own error (a `Status` object), as opposed to the pod's answer.

    The pod proxy answers with a Status when it cannot reach the pod or the operator may not
    use `pods/proxy`: then the session URL could not be checked, which is no verdict on it.
    The content type is not trusted to tell: a proxy in between may relabel the body.
    """
    if status < 300:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None  # not JSON: the pod's own answer
    if isinstance(document, dict) and document.get("kind") == "Status":
        why = str(document.get("message") or document.get("reason") or "")
        return f"the API server answered HTTP {status} itself" + (f": {why}" if why else "")
    return None


def proxy_detour(location: str | None, namespace: str, pod: str) -> str | None:
    """A redirect to an API-server path other than this pod's proxy: not the session's answer.

    The API server puts its pod-proxy prefix in front of the pod's own redirects, so a Location
    on `/api/...` or `/apis/...` that is not this pod's proxy came from the API server or a
    proxy in front of it (a login page, another resource); it says nothing about the session.
    """
    if not location:
        return None
    path = urlsplit(location).path
    if not path.startswith(("/api/", "/apis/")):
        return None
    mine = re.compile(
        rf"^/api/v1/namespaces/{re.escape(namespace)}/pods/{re.escape(pod)}(:[^/]*)?/proxy(/|$)"
    )
    if mine.match(path):
        return None
    return f"the answer redirects to {location}, off this pod's proxy: not the session's answer"


def judge_session_url(
    status_code: int | None,
    location_header: str | None,
    base_path: str,
    error: str | None,
    *,
    path: str | None = None,
    strip_path_prefix: bool = False,
) -> CheckStatus:
    """The SessionUrl check: does the server answer where Renku sends users?

    `path` is what was requested (default: the base path). With `strip_path_prefix` the server
    lives at `/` behind Renku's proxy, so its own redirects are not judged against the base
    path.
    """
    where = path or base_path
    if error is not None or status_code is None:
        why = error or "no answer"
        return CheckStatus(
            name="SessionUrl", result="Skipped", message=f"could not reach the session: {why}"
        )
    if 200 <= status_code < 300:
        return _url_check("Passed", f"{where} answered HTTP {status_code}")
    if 300 <= status_code < 400:
        base = "/" if strip_path_prefix else base_path
        return _redirect_check(status_code, location_header, base, where)
    fix = (
        "with stripPathPrefix: true the server receives / and must serve its UI there; check "
        "defaultUrl, or set stripPathPrefix: false if it serves under RENKU_BASE_URL_PATH"
        if strip_path_prefix
        else f"serve under RENKU_BASE_URL_PATH ({base_path}), e.g. Jupyter's "
        "--ServerApp.base_url=$RENKU_BASE_URL_PATH; check defaultUrl; or set stripPathPrefix: "
        "true if the server can only serve at /"
    )
    if status_code == 404:
        return _url_check("Failed", f"{where} answered 404 Not Found, so users would too: {fix}")
    if status_code >= 500:
        return _url_check("Failed", f"{where} answered HTTP {status_code} (server error): {fix}")
    if status_code in (401, 403):
        return _url_check(
            "Warning",
            f"{where} answered HTTP {status_code}: the server asks for its own login, but "
            "Renku's proxy already authenticates users; disable the server's authentication "
            "(e.g. Jupyter's --ServerApp.token='')",
        )
    return _url_check("Warning", f"{where} answered HTTP {status_code}")


def _redirect_check(status: int, location: str | None, base_path: str, where: str) -> CheckStatus:
    if not location:
        return _url_check("Warning", f"{where} answered HTTP {status} without a Location")
    target = unproxied_location(location)
    parts = urlsplit(target)
    relative = not parts.netloc and not parts.path.startswith("/")
    base = base_path.rstrip("/")
    if relative or parts.path == base or parts.path.startswith(f"{base}/"):
        return _url_check("Passed", f"{where} redirects to {target}, inside the session")
    return _url_check(
        "Failed",
        f"{where} redirects to {target}, outside the session's base path {base_path}: users "
        f"would land on a page that is not their session; make the server build URLs from "
        f"RENKU_BASE_URL_PATH, check defaultUrl, or set stripPathPrefix",
    )


def _url_check(result: CheckResult, message: str) -> CheckStatus:
    return CheckStatus(name="SessionUrl", result=result, message=message)
