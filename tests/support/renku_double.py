"""A test double of Renku's data service (environments API), written to CONTRACT.md.

It serves ``/api/data/environments``, Renku's own image check (``/api/data/sessions/images``),
the resource pools list (``/api/data/resource_pools``) and a small Keycloak-like
client-credentials token endpoint from an aiohttp server in its own thread with its own event loop, bound to
127.0.0.1 on a free port, so it answers whatever the test's event loop is doing.

Every request and response is checked against ``environments-api.spec.yaml`` (the image
check against ``images-check.spec.yaml``, the pools against ``resource-pools.spec.yaml``) with
openapi-core; see ``SpecChecker`` for where CONTRACT.md (the live server) wins over the
spec. Problems are collected in ``RenkuDouble.violations``; the ``renku_double`` fixture
fails the test at teardown when there are any.

All public methods are thread-safe: tests call them from the test thread while the server
thread handles requests.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

# A copy of shared/renku/environments-api.spec.yaml (upstream renku-data-services, main at
# e81895b4); tests/unit/test_renku_double.py checks it still equals the shared one when present.
SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "renku" / "environments-api.spec.yaml"
SHARED_SPEC_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "renku" / SPEC_PATH.name
# Excerpts of the same commit, vendored the same way (and compared the same way).
IMAGES_SPEC_PATH = SPEC_PATH.with_name("images-check.spec.yaml")
POOLS_SPEC_PATH = SPEC_PATH.with_name("resource-pools.spec.yaml")
VENDORED_SPECS = (SPEC_PATH, IMAGES_SPEC_PATH, POOLS_SPEC_PATH)
API_ROOT = "/api/data"
TOKEN_PATH = "/realms/renku/protocol/openid-connect/token"
ADMIN_TOKEN = '{"id":"admin1","is_admin":true,"email":"admin@example.org"}'
USER_TOKEN = '{"id":"user1","is_admin":false,"email":"user@example.org"}'
ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
_ENV_PATH = re.compile(rf"^{API_ROOT}/environments(?:/(?P<id>[^/]+))?/?$")
IMAGES_PATH = f"{API_ROOT}/sessions/images"
POOLS_PATH = f"{API_ROOT}/resource_pools"
_POOL_FILTERS = frozenset({"cpu", "gpu", "memory", "max_storage"})
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# Field rules from CONTRACT.md (they match the spec, with the live server's ranges).
_STRINGS = {"name": (1, 99), "description": (0, 500), "container_image": (3, 500)}
_STRINGS |= {"default_url": (0, 200)}
_INTS = {"uid": (1, 65535), "gid": (1, 65535), "port": (1, 65399)}
_PATHS = ("working_directory", "mount_directory")
_LISTS = ("command", "args")
_BOOLS = ("is_archived", "strip_path_prefix")
FIELDS = (*_STRINGS, *_INTS, *_PATHS, *_LISTS, *_BOOLS)
_POST_DEFAULTS = {"default_url": "/lab", "uid": 1000, "gid": 1000, "port": 8080}
_POST_DEFAULTS |= {"is_archived": False, "strip_path_prefix": False}
_INT_STRING = re.compile(r"\s*[+-]?\d+\s*")


def new_ulid() -> str:
    """A ULID like Renku's: 48 bits of milliseconds, 80 random bits, Crockford base32."""
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- field validation


@dataclass(frozen=True)
class FieldError:
    """One 422 reason; ``contract_only`` marks rules the spec cannot express."""

    field: str
    message: str
    contract_only: bool = False


def _coerce_int(value: Any) -> int | str:
    """An int, or the error message pydantic's lax mode would give."""
    if isinstance(value, bool):
        return "Input should be a valid integer"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        ok = value.is_integer()
        return int(value) if ok else "Input should be a valid integer, got a fractional number"
    if isinstance(value, str) and _INT_STRING.fullmatch(value):
        return int(value)  # CONTRACT: "uid": "1000" is coerced
    return "Input should be a valid integer, unable to parse string as an integer"


def _check_value(key: str, value: Any, *, patch: bool) -> tuple[Any, str | None, bool]:
    """(cleaned value, error message, contract_only) for one known field."""
    if key in _INTS:
        number = _coerce_int(value)
        if isinstance(number, str):
            return None, number, False
        low, high = _INTS[key]
        if number < low:
            return None, f"Input should be greater than {low - 1}", False
        if number > high:
            return None, f"Input should be less than or equal to {high}", False
        return number, None, False
    if key in _BOOLS:
        ok = isinstance(value, bool)
        return value, None if ok else "Input should be a valid boolean", False
    if key in _LISTS:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return None, "Input should be a valid list of strings", False
        if not value:
            return None, "List should have at least 1 item after validation, not 0", False
        return value, None, False
    if not isinstance(value, str):
        return None, "Input should be a valid string", False
    if key in _PATHS:
        if patch and value == "":
            return None, None, False  # CONTRACT: "" clears the directory
        if not value:
            return None, "String should have at least 1 character", False
        if not value.startswith("/"):
            return None, "Value error, the path must be absolute", True
        return value, None, False
    low, high = _STRINGS[key]
    if len(value) < low:
        return None, f"String should have at least {low} characters", False
    if len(value) > high:
        return None, f"String should have at most {high} characters", False
    return value, None, False


def validate_body(body: Any, *, patch: bool) -> tuple[dict[str, Any], list[FieldError]]:
    """Clean a POST/PATCH body as the live server does; unknown keys are dropped."""
    if not isinstance(body, dict):
        return {}, [FieldError("body", "Input should be a valid dictionary")]
    errors: list[FieldError] = []
    cleaned: dict[str, Any] = {}
    for key in FIELDS:
        if key not in body:
            continue
        value = body[key]
        if value is None and patch:
            if key in _LISTS:
                cleaned[key] = None  # CONTRACT: null clears command and args
            continue  # CONTRACT: null leaves every other field unchanged
        result, message, contract_only = _check_value(key, value, patch=patch)
        if message:
            errors.append(FieldError(key, message, contract_only))
        else:
            cleaned[key] = result
    if not patch:
        errors += [
            FieldError(k, "Field required") for k in ("name", "container_image") if k not in body
        ]
        source = body.get("environment_image_source")
        if source != "image":
            message = "Field required" if source is None else "Input should be 'image'"
            errors.append(FieldError("environment_image_source", message))
    return cleaned, errors


# ---------------------------------------------------------------- spec checks


@dataclass(frozen=True)
class Violation:
    """A disagreement with the OpenAPI spec.

    kind: ``request`` (the client sent what the spec forbids), ``response`` (the double
    answered what the spec forbids: a bug here), ``verdict`` (the double accepted what the
    spec rejects, or rejected what it accepts, without a CONTRACT.md reason: a bug here).
    """

    kind: Literal["request", "response", "verdict"]
    method: str
    path: str
    errors: tuple[str, ...]

    def __str__(self) -> str:
        return f"[{self.kind}] {self.method} {self.path}: " + "; ".join(self.errors)


_SPEC_LOCK = threading.Lock()
_SPECS: dict[Path, OpenAPI] = {}


def _load_spec(path: Path = SPEC_PATH) -> OpenAPI:
    with _SPEC_LOCK:  # parsed once per session: it takes ~0.4 s
        if path not in _SPECS:
            # Exemption 1: the upstream environments file fails openapi-spec-validator (``ref:``
            # instead of ``$ref`` in BuildParameters, unrelated to environments), and the pools
            # excerpt gives non-nullable numbers ``default: null``: skip that check.
            _SPECS[path] = OpenAPI.from_file_path(str(path), config=Config(spec_validator_cls=None))
        return _SPECS[path]


def _explain(exc: Exception) -> str:
    causes = getattr(exc.__cause__, "schema_errors", None) or ()
    details = [str(getattr(cause, "message", cause)) for cause in causes]
    return f"{exc}" + (f" ({'; '.join(details)})" if details else "")


class SpecChecker:
    """openapi-core checks, after applying what CONTRACT.md documents about the live server.

    Exemptions (each one is a documented difference between the live server and the spec):
    1. the spec file is loaded without openapi-spec-validator (see ``_load_spec``);
    2. unknown keys in POST/PATCH bodies are ignored by the server: dropped before checking;
    3. numeric strings for uid/gid/port are coerced by the server: coerced before checking;
    4. PATCH ``null`` means "unchanged" (for command/args "clear"): null keys are dropped;
    5. the spec's EnvironmentPatch joins CommandAndArgs with ``additionalProperties: false``,
       which forbids command/args in every PATCH although the server takes them: they are
       checked against the spec's own EnvironmentPatchCommand/EnvironmentPatchArgs instead;
    6. the token endpoint is Keycloak's, not Renku's: not checked; nor are unknown paths.

    The image check and the resource pools are checked against their own excerpts, with no
    exemption (the double keeps one checker per spec file).
    """

    def __init__(self, path: Path = SPEC_PATH) -> None:
        self._spec = _load_spec(path)
        self._patch_lists: dict[str, OAS30Validator] = {}
        if path != SPEC_PATH:
            return
        schemas = self._spec.spec / "components" / "schemas"
        for key, name in (("command", "EnvironmentPatchCommand"), ("args", "EnvironmentPatchArgs")):
            with (schemas / name).resolve() as resolved:
                self._patch_lists[key] = OAS30Validator(resolved.contents)

    def request_errors(self, req: MockRequest) -> list[str]:
        """Spec errors of a request, after the exemptions."""
        errors: list[str] = []
        if req.method == "patch" and req.body:
            document = _json_or_none(req.body)
            if isinstance(document, dict):
                for key, validator in self._patch_lists.items():
                    if key in document:
                        errors += [e.message for e in validator.iter_errors(document[key])]
        normalised = _normalise(req)
        return errors + [_explain(e) for e in self._spec.iter_request_errors(normalised)]

    def response_errors(self, req: MockRequest, resp: MockResponse) -> list[str]:
        """Spec errors of a response (no exemptions needed: the double must conform)."""
        return [_explain(e) for e in self._spec.iter_response_errors(req, resp)]


def _normalise(req: MockRequest) -> MockRequest:
    document = _json_or_none(req.body) if req.body else None
    if req.method not in ("post", "patch") or not isinstance(document, dict):
        return req
    allowed = set(FIELDS) | ({"environment_image_source"} if req.method == "post" else set())
    body: dict[str, Any] = {}
    for key, value in document.items():
        if key not in allowed or (req.method == "patch" and (value is None or key in _LISTS)):
            continue  # exemptions 2, 4 and 5
        coerce = key in _INTS and isinstance(value, str) and _INT_STRING.fullmatch(value)
        body[key] = int(value) if coerce else value  # exemption 3
    return MockRequest(
        req.host_url, req.method, req.path, args=req.args, data=json.dumps(body).encode()
    )


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


# ---------------------------------------------------------------- the double


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the double saw it (``status`` None: answer dropped)."""

    method: str
    path: str
    query: dict[str, str]
    status: int | None
    body: Any
    user: str | None
    authorized: bool = False
    """Whether the request carried an Authorization header at all."""


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # Set when the double judged the body: its verdict is compared with the spec's.
    judged: bool = False
    contract_only: bool = False


@dataclass
class _Token:
    roles: frozenset[str]
    expires_at: float


def _error(status: int, message: str, detail: str | None = None) -> _Reply:
    error: dict[str, Any] = {"code": 1000 + status, "message": message}
    if detail:
        error["detail"] = detail
    return _Reply(status, {"error": error})


def _new_env(fields: Mapping[str, Any]) -> dict[str, Any]:
    env: dict[str, Any] = dict.fromkeys(FIELDS) | _POST_DEFAULTS | dict(fields)
    return env | {"id": new_ulid(), "creation_date": _now()}


def _render(env: Mapping[str, Any]) -> dict[str, Any]:
    # CONTRACT: responses leave null fields out.
    return {key: copy.deepcopy(value) for key, value in env.items() if value is not None}


_FK_MESSAGE = (
    "<class 'asyncpg.exceptions.ForeignKeyViolationError'>: update or delete on table "
    '"environments" violates foreign key constraint "launchers_environment_id_fkey" '
    'on table "launchers"'
)
_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}


class RenkuDouble:
    """The fake data service. ``start()``/``stop()`` it, or use it as a context manager.

    Faults (``fail_next``, ``drop_next_response``, ``hang_next_response``) apply to requests
    below ``/api/data/environments`` with the given method, in order (``fail_next_lookup``:
    to the image check or the pools); ``set_down`` answers 503 to everything, the token
    endpoint included.
    """

    def __init__(
        self,
        *,
        client_id: str = "renku-env-operator",
        client_secret: str | None = None,
        client_roles: tuple[str, ...] = ("renku-admin",),
        token_lifetime: int = 300,
    ):
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(16)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._envs: dict[str, dict[str, Any]] = {}
        self._launchers: dict[str, str] = {}
        self._clients = {client_id: (self.client_secret, frozenset(client_roles))}
        self._tokens: dict[str, _Token] = {}
        self._token_lifetime = token_lifetime
        self._faults: list[tuple[str, _Reply]] = []
        self._actions: list[tuple[str, Literal["drop", "hang"]]] = []
        self._stalls: list[str] = []
        self._hang_paths: set[str] = set()
        self.stalled = threading.Event()
        self._hung: list[asyncio.Event] = []
        self._down = False
        self._requests: list[RecordedRequest] = []
        self._violations: list[Violation] = []
        self._invalid_requests_allowed = False
        self._checker: SpecChecker | None = None
        self._lookup_checkers: dict[str, SpecChecker] = {}
        self._image_check = True
        self._inaccessible: set[str] = set()
        self._image_platforms: dict[str, list[dict[str, str]]] = {}
        self._pools: list[dict[str, Any]] = []
        self.add_resource_pool("Default pool", "linux/amd64", default=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # ------------------------------------------------------------ addresses, credentials

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (no path)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        """The data service root, to give to the client: ``<base_url>/api/data``."""
        return self.base_url + API_ROOT

    @property
    def token_url(self) -> str:
        """The client-credentials token endpoint."""
        return self.base_url + TOKEN_PATH

    @property
    def admin_token(self) -> str:
        """An admin bearer token in the data service's DUMMY_STORES form."""
        return ADMIN_TOKEN

    @property
    def user_token(self) -> str:
        """A valid non-admin bearer token in DUMMY_STORES form."""
        return USER_TOKEN

    def client_secret_data(self) -> dict[str, str]:
        """A Secret's decoded data for the default client-credentials client."""
        return {
            "clientId": self.client_id,
            "clientSecret": self.client_secret,
            "tokenUrl": self.token_url,
        }

    def add_client(self, client_id: str, client_secret: str, roles: tuple[str, ...] = ()) -> None:
        """Register another client for the token endpoint (no roles: not an admin)."""
        with self._lock:
            self._clients[client_id] = (client_secret, frozenset(roles))

    def set_token_lifetime(self, seconds: int) -> None:
        """``expires_in`` of tokens issued from now on."""
        with self._lock:
            self._token_lifetime = seconds

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token the token endpoint has issued (to check they never leak)."""
        with self._lock:
            return list(self._tokens)

    def expire_all_tokens(self) -> None:
        """Make every issued token expired: writes with them answer 401."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = 0.0

    # ------------------------------------------------------------ faults

    def fail_next(
        self, method: str, status: int, times: int = 1, retry_after: float | None = None
    ) -> None:
        """Answer the next ``times`` requests of ``method`` with ``status``, doing nothing."""
        reply = _error(status, "Injected failure")
        if retry_after is not None:
            reply.headers["Retry-After"] = f"{retry_after:g}"
        with self._lock:
            self._faults += [(method.upper(), reply)] * times

    def fail_next_token(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` token requests with ``status``."""
        reply = _Reply(
            status, {"error": "temporarily_unavailable" if status >= 500 else "invalid_request"}
        )
        with self._lock:
            self._faults += [("TOKEN", reply)] * times

    def drop_next_response(self, method: str) -> None:
        """Carry out the next ``method`` request, then close the connection unanswered."""
        with self._lock:
            self._actions.append((method.upper(), "drop"))

    def hang_next_response(self, method: str) -> None:
        """Carry out the next ``method`` request, then hold the answer until released."""
        with self._lock:
            self._actions.append((method.upper(), "hang"))

    def hang_requests(self, path: str) -> None:
        """Record every request to exactly ``path`` (the token endpoint, a lookup, the
        environments list), then hold its answer until released: a Renku that accepts
        connections and never answers."""
        with self._lock:
            self._hang_paths.add(path)

    def stall_next_request(self, method: str) -> None:
        """Hold the next ``method`` request before carrying it out, until released (a request
        still on its way); ``stalled`` is set once it waits."""
        with self._lock:
            self._stalls.append(method.upper())

    def release_hung(self) -> None:
        """Let held answers go (they go at ``stop()`` anyway); ``hang_requests`` ends."""
        with self._lock:
            self._hang_paths.clear()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._release_all)

    def set_down(self, down: bool) -> None:
        """While down, every request answers 503."""
        with self._lock:
            self._down = down

    def fail_next_lookup(self, path: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests of ``IMAGES_PATH`` or ``POOLS_PATH`` with ``status``."""
        with self._lock:
            self._faults += [(path, _error(status, "Injected failure"))] * times

    # ------------------------------------------------------------ image check, resource pools

    def remove_image_check(self) -> None:
        """An older Renku: ``/sessions/images`` answers 404 (an unknown URL)."""
        with self._lock:
            self._image_check = False

    def set_inaccessible(self, reference: str, inaccessible: bool = True) -> None:
        """Renku's image check says ``accessible: false`` for exactly this reference."""
        with self._lock:
            (self._inaccessible.add if inaccessible else self._inaccessible.discard)(reference)

    def set_image_platforms(self, reference: str, platforms: list[str]) -> None:
        """Platforms (``os/arch[/variant]``) the image check reports for this reference."""
        with self._lock:
            self._image_platforms[reference] = [_platform_object(p) for p in platforms]

    def add_resource_pool(
        self, name: str, platform: str, *, public: bool = True, default: bool = False
    ) -> dict[str, Any]:
        """A resource pool (names need 5 characters or more); one public amd64 default pool
        exists from the start, as in a fresh Renku."""
        with self._lock:
            pool_id = len(self._pools) + 1
            pool = {
                "id": pool_id,
                "name": name,
                "public": public,
                "default": default,
                "platform": platform,
                "classes": [
                    {
                        "id": pool_id * 10,
                        "name": f"{name} class",
                        "default": True,
                        "cpu": 0.5,
                        "memory": 1,
                        "gpu": 0,
                        "max_storage": 10,
                        "default_storage": 1,
                    }
                ],
            }
            self._pools.append(pool)
            return copy.deepcopy(pool)

    def clear_resource_pools(self) -> None:
        """No pools at all (not even the default one)."""
        with self._lock:
            self._pools.clear()

    # ------------------------------------------------------------ state, as an admin sees it

    @property
    def environments(self) -> dict[str, dict[str, Any]]:
        """A snapshot of all environments by id, as the API renders them."""
        with self._lock:
            return {env_id: _render(env) for env_id, env in self._envs.items()}

    def admin_create(self, **fields: Any) -> dict[str, Any]:
        """Create an environment directly (no validation), as in the admin panel."""
        env = _new_env(fields)
        with self._lock:
            self._envs[env["id"]] = env
            self._changed.notify_all()
            return _render(env)

    def admin_edit(self, env_id: str, **fields: Any) -> dict[str, Any]:
        """Change fields directly (None clears), as an admin would in the admin panel."""
        with self._lock:
            env = self._envs[env_id]
            env.update(fields)
            self._changed.notify_all()
            return _render(env)

    def admin_delete(self, env_id: str) -> None:
        """Delete an environment directly (KeyError if unknown)."""
        with self._lock:
            del self._envs[env_id]
            self._changed.notify_all()

    def add_launcher(self, env_id: str) -> str:
        """A session launcher using ``env_id``: DELETE of it then answers the FK 500."""
        launcher_id = new_ulid()
        with self._lock:
            self._launchers[launcher_id] = env_id
        return launcher_id

    def remove_launcher(self, launcher_id: str) -> None:
        """Forget a launcher."""
        with self._lock:
            del self._launchers[launcher_id]

    # ------------------------------------------------------------ observation

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, token requests included (secrets redacted)."""
        with self._lock:
            return list(self._requests)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests with this method and/or exact path (query excluded)."""
        with self._lock:
            return sum(
                1
                for r in self._requests
                if (method is None or r.method == method.upper())
                and (path is None or r.path == path)
            )

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._requests.clear()

    @property
    def violations(self) -> list[Violation]:
        """All spec violations seen so far."""
        with self._lock:
            return list(self._violations)

    def allow_invalid_requests(self) -> None:
        """Tests that send invalid requests on purpose: do not fail on ``request`` kind."""
        with self._lock:
            self._invalid_requests_allowed = True

    def unexpected_violations(self) -> list[Violation]:
        """The violations that should fail the test."""
        with self._lock:
            allowed = self._invalid_requests_allowed
            return [v for v in self._violations if not (allowed and v.kind == "request")]

    def wait_until(self, predicate: Callable[[RenkuDouble], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate(self)`` holds (checked after each request or state change)."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError(f"Renku double: condition not met within {timeout}s")

    async def wait_until_async(
        self, predicate: Callable[[RenkuDouble], bool], timeout: float = 5.0
    ) -> None:
        """``wait_until`` for async tests (waits in a worker thread)."""
        await asyncio.to_thread(self.wait_until, predicate, timeout)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> RenkuDouble:
        """Start serving in a new thread; returns once the port is bound."""
        self._checker = SpecChecker()
        self._lookup_checkers = {
            IMAGES_PATH: SpecChecker(IMAGES_SPEC_PATH),
            POOLS_PATH: SpecChecker(POOLS_SPEC_PATH),
        }
        started = threading.Event()
        failures: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(started, failures), name="renku-double", daemon=True
        )
        self._thread.start()
        if not started.wait(10) or failures:
            raise RuntimeError("the Renku double did not start") from (
                failures[0] if failures else None
            )
        return self

    def stop(self) -> None:
        """Release held answers, stop the server and join its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(self._release_all, True)
        thread.join(10)
        if thread.is_alive():
            raise RuntimeError("the Renku double's thread did not stop")
        self._loop = self._thread = None

    def __enter__(self) -> RenkuDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self, started: threading.Event, failures: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        try:
            runner = loop.run_until_complete(self._start_site())
        except BaseException as exc:  # handed to start(), which raises it
            failures.append(exc)
            loop.close()
            started.set()
            return
        self._loop = loop
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _start_site(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._port = runner.addresses[0][1]
        return runner

    def _release_all(self, stop: bool = False) -> None:
        for event in self._hung:
            event.set()
        self._hung.clear()
        if stop and self._loop is not None:
            self._loop.stop()

    # ------------------------------------------------------------ request handling

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        method, path, query = request.method, request.path, dict(request.query)
        with self._lock:
            stall = method in self._stalls and _ENV_PATH.match(path) is not None
            if stall:
                self._stalls.remove(method)
        if stall:
            event = asyncio.Event()
            self._hung.append(event)
            self.stalled.set()
            await event.wait()
        with self._lock:
            reply, user, action = self._answer(method, path, query, request.headers, raw)
            if path in self._hang_paths:
                action = "hang"
        self._check(method, path, query, raw, reply, dropped=action == "drop")
        body = _redacted_form(raw) if path == TOKEN_PATH else _logged_body(raw)
        with self._lock:
            status = None if action == "drop" else reply.status
            authorized = "Authorization" in request.headers
            self._requests.append(
                RecordedRequest(method, path, query, status, body, user, authorized)
            )
            self._changed.notify_all()
        if action == "drop" and request.transport is not None:
            request.transport.close()  # carried out, but the client never hears about it
        elif action == "hang":
            event = asyncio.Event()
            self._hung.append(event)
            await event.wait()
        if reply.body is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], raw: bytes
    ) -> tuple[_Reply, str | None, str | None]:
        if self._down:
            return _error(503, "Service Unavailable"), None, None
        if path == TOKEN_PATH:
            return (
                self._take_fault("TOKEN") or self._token_endpoint(method, headers, raw),
                None,
                None,
            )
        if path in (IMAGES_PATH, POOLS_PATH):
            user, admin = self._principal(headers)
            fault = self._take_fault(path)
            return fault or self._lookup(method, path, query, user, admin), user, None
        match = _ENV_PATH.match(path)
        if match is None or (match["id"] is not None and not ULID_RE.match(match["id"])):
            return _error(404, f"Requested URL {path} not found"), None, None
        fault = self._take_fault(method)
        if fault is not None:
            return fault, None, None
        user, admin = self._principal(headers)
        reply = self._environments(method, match["id"], query, raw, user, admin)
        return reply, user, self._take_action(method)

    def _take_fault(self, method: str) -> _Reply | None:
        for index, (wanted, reply) in enumerate(self._faults):
            if wanted == method:
                del self._faults[index]
                return copy.deepcopy(reply)
        return None

    def _take_action(self, method: str) -> str | None:
        for index, (wanted, action) in enumerate(self._actions):
            if wanted == method:
                del self._actions[index]
                return action
        return None

    def _principal(self, headers: Mapping[str, str]) -> tuple[str | None, bool]:
        # CONTRACT: a bad or expired token is not refused, the caller becomes anonymous.
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None, False
        issued = self._tokens.get(token)
        if issued is not None:
            if issued.expires_at <= time.monotonic():
                return None, False
            return "service-account", "renku-admin" in issued.roles
        document = _json_or_none(token.encode())
        if isinstance(document, dict) and isinstance(document.get("id"), str):
            return document["id"], document.get("is_admin") is True
        return None, False

    def _environments(
        self,
        method: str,
        env_id: str | None,
        query: dict[str, str],
        raw: bytes,
        user: str | None,
        admin: bool,
    ) -> _Reply:
        if method == "GET":
            return self._list(query) if env_id is None else self._get(env_id)
        if method not in ("POST", "PATCH", "DELETE") or (method == "POST") != (env_id is None):
            return _error(405, "Method not allowed")
        if user is None:
            return _error(401, "You have to be authenticated to perform this operation.")
        if not admin:  # CONTRACT: a non-admin PATCH answers 401, POST and DELETE 403
            status = 401 if method == "PATCH" else 403
            return _error(status, "You do not have the required permissions for this operation.")
        if method == "DELETE" and env_id is not None:
            return self._delete(env_id)
        document = _json_or_none(raw) if raw else None
        if document is None:
            return _error(400, "The request body is not valid JSON.")
        return self._create(document) if env_id is None else self._patch(env_id, document)

    def _lookup(
        self, method: str, path: str, query: dict[str, str], user: str | None, admin: bool
    ) -> _Reply:
        if path == IMAGES_PATH and not self._image_check:
            return _error(404, f"Requested URL {path} not found")
        if method != "GET":
            return _error(405, "Method not allowed")
        if path == POOLS_PATH:
            unknown = sorted(set(query) - _POOL_FILTERS)
            if unknown:
                reason = ", ".join(f"{key}: Extra inputs are not permitted" for key in unknown)
                return _error(422, f"There are errors in the following fields, {reason}")
            # CONTRACT: anyone may list the public pools; an admin sees all of them.
            pools = [pool for pool in self._pools if admin or pool["public"]]
            return _Reply(200, copy.deepcopy(pools))
        reference = query.get("image_url", "")
        if not reference:
            return _error(
                422, "There are errors in the following fields, image_url: Field required"
            )
        if any(char.isspace() for char in reference):
            return _error(422, "The image url is malformed.")
        accessible = reference not in self._inaccessible
        body: dict[str, Any] = {"accessible": accessible}
        if accessible and reference in self._image_platforms:
            body["platforms"] = copy.deepcopy(self._image_platforms[reference])
        return _Reply(200, body)

    def _list(self, query: dict[str, str]) -> _Reply:
        flag = query.get("include_archived", "false").lower()
        if flag not in _TRUE | _FALSE:
            reason = "include_archived: Input should be a valid boolean"
            return _error(422, f"There are errors in the following fields, {reason}")
        envs = [
            _render(env) for env in self._envs.values() if flag in _TRUE or not env["is_archived"]
        ]
        return _Reply(200, envs)

    def _get(self, env_id: str) -> _Reply:
        env = self._envs.get(env_id)
        if env is None:
            return _error(404, f"Session environment with id '{env_id}' does not exist.")
        return _Reply(200, _render(env))

    def _create(self, document: Any) -> _Reply:
        cleaned, errors = validate_body(document, patch=False)
        if errors:
            return _rejection(errors)
        env = _new_env(cleaned)
        self._envs[env["id"]] = env
        return _Reply(201, _render(env), judged=True)

    def _patch(self, env_id: str, document: Any) -> _Reply:
        cleaned, errors = validate_body(document, patch=True)
        if errors:
            return _rejection(errors)
        env = self._envs.get(env_id)
        if env is None:
            return _error(404, f"Session environment with id '{env_id}' does not exist.")
        env.update(cleaned)
        return _Reply(200, _render(env), judged=True)

    def _delete(self, env_id: str) -> _Reply:
        if env_id in self._launchers.values():
            return _error(500, _FK_MESSAGE)  # CONTRACT: nothing is deleted
        self._envs.pop(env_id, None)  # CONTRACT: 204 for an unknown id too
        return _Reply(204)

    def _token_endpoint(self, method: str, headers: Mapping[str, str], raw: bytes) -> _Reply:
        if method != "POST":
            return _Reply(405, {"error": "invalid_request"})
        form = dict(urllib.parse.parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
        client_id, secret = _basic_auth(headers) or (
            form.get("client_id"),
            form.get("client_secret"),
        )
        if form.get("grant_type") != "client_credentials":
            return _Reply(
                400,
                {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"},
            )
        known = self._clients.get(client_id or "")
        if known is None or not secrets.compare_digest(known[0].encode(), (secret or "").encode()):
            return _Reply(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "Invalid client or Invalid client credentials",
                },
            )
        token = secrets.token_urlsafe(32)
        lifetime = self._token_lifetime
        self._tokens[token] = _Token(known[1], time.monotonic() + lifetime)
        return _Reply(
            200,
            {
                "access_token": token,
                "expires_in": lifetime,
                "refresh_expires_in": 0,
                "token_type": "Bearer",
                "not-before-policy": 0,
                "scope": form.get("scope", "profile email"),
            },
        )

    def _check(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        raw: bytes,
        reply: _Reply,
        *,
        dropped: bool,
    ) -> None:
        checker = self._lookup_checkers.get(path, self._checker)
        if checker is None or path == TOKEN_PATH:
            return
        if checker is self._checker and not _ENV_PATH.match(path):
            return  # exemption 6
        if path == IMAGES_PATH and not self._image_check:
            return  # an older Renku without the image check: an unknown path there
        req = MockRequest(self.base_url, method, path, args=query, data=raw or None)
        found: list[Violation] = []
        request_errors = checker.request_errors(req)
        if request_errors:
            found.append(Violation("request", method, path, tuple(request_errors)))
        if reply.judged:
            accepted = reply.status < 300
            if accepted and request_errors:
                found.append(
                    Violation("verdict", method, path, ("the double accepted it", *request_errors))
                )
            if not accepted and not request_errors and not reply.contract_only:
                found.append(
                    Violation(
                        "verdict",
                        method,
                        path,
                        ("the double refused a spec-valid request", json.dumps(reply.body)),
                    )
                )
        # The image check's excerpt lists 200 and 422 only: injected faults (ErrorResponse
        # bodies, as everywhere in Renku) are not held against it.
        unlisted = path == IMAGES_PATH and reply.status not in (200, 422)
        if not dropped and not unlisted:
            data = b"" if reply.body is None else json.dumps(reply.body).encode()
            resp = MockResponse(
                data,
                status_code=reply.status,
                headers=reply.headers,
                content_type="application/json" if data else "",
            )
            response_errors = checker.response_errors(req, resp)
            if response_errors:
                found.append(Violation("response", method, path, tuple(response_errors)))
        if found:
            with self._lock:
                self._violations += found


def _rejection(errors: list[FieldError]) -> _Reply:
    reasons = ", ".join(f"{e.field}: {e.message}" for e in errors)
    reply = _error(422, f"There are errors in the following fields, {reasons}")
    reply.judged = True
    reply.contract_only = all(e.contract_only for e in errors)
    return reply


def _platform_object(text: str) -> dict[str, str]:
    os_, architecture, *variant = text.split("/")
    found = {"os": os_, "architecture": architecture}
    return found | ({"variant": variant[0]} if variant else {})


def _basic_auth(headers: Mapping[str, str]) -> tuple[str, str] | None:
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    decoded = base64.b64decode(value + "==").decode(errors="replace")
    client_id, _, secret = decoded.partition(":")
    return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)


def _redacted_form(raw: bytes) -> dict[str, str]:
    form = dict(urllib.parse.parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
    return {key: "***" if key == "client_secret" else value for key, value in form.items()}


def _logged_body(raw: bytes) -> Any:
    if not raw:
        return None
    document = _json_or_none(raw)
    return raw.decode(errors="replace") if document is None else document
