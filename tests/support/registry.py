"""Real OCI registries for tests: Debian's `docker-registry` on loopback, plain and htpasswd.

Fixtures (session-scoped: a registry starts in ~100 ms but there is no reason to do it twice):
- `registry`: anonymous pull and push, filesystem storage in a temp dir, delete enabled.
- `auth_registry`: the same behind htpasswd (bcrypt), answering `401 Basic` to anonymous pulls;
  push with `auth=auth_registry.credentials`.
- `token_registry`: a `TokenProxy` (Bearer challenge, anonymous tokens, refused for `private/`
  repositories) in front of `registry`; push to `registry`, pull through `token_registry`.
Tests using them should carry `pytest.mark.registry`. Without `docker-registry` on PATH they
are skipped, unless CI is set: CI installs it, so there its absence is an error.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .oci_images import push_image
from .registry_token import TokenProxy

__all__ = [
    "AUTH_REGISTRY_CREDENTIALS",
    "RegistryServer",
    "auth_registry",
    "push_image",
    "registry",
    "token_registry",
]

AUTH_REGISTRY_CREDENTIALS = ("pusher", "push-secret")
_READY_TIMEOUT = 15.0
_POLL_INTERVAL = 0.02
_STOP_TIMEOUT = 5.0
_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: test-only-secret
"""
_AUTH_CONFIG = """\
auth:
  htpasswd:
    realm: test-registry
    path: {htpasswd}
"""


@dataclass
class RegistryServer:
    """A running `docker-registry serve` process."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    credentials: tuple[str, str] | None = None
    """User and password to push with, for an instance behind htpasswd."""

    @property
    def host(self) -> str:
        """host:port, as it appears in an image reference."""
        return self.url.removeprefix("http://")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(_STOP_TIMEOUT)


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path:
        return path
    reason = f"{binary} is not on PATH (apt-get install docker-registry apache2-utils)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it (.ci/install-tools.sh)")
    pytest.skip(reason)


def _htpasswd(directory: Path, credentials: tuple[str, str]) -> Path:
    """A bcrypt htpasswd file, the only hash docker-registry accepts."""
    path = directory / "htpasswd"
    user, password = credentials
    command = [_require("htpasswd"), "-Bbc", str(path), user, password]
    subprocess.run(command, check=True, capture_output=True)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_ready(server: RegistryServer) -> None:
    """Poll /v2/ until the registry answers (200, or 401 behind auth), with a deadline."""
    deadline = time.monotonic() + _READY_TIMEOUT
    with httpx.Client(timeout=1) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {server.log.read_text()[-2000:]}")
            try:
                if client.get(f"{server.url}/v2/").status_code in (200, 401):
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(_POLL_INTERVAL)
    raise TimeoutError(f"docker-registry not ready in {_READY_TIMEOUT}s: {server.log.read_text()}")


def start_registry(
    directory: Path, *, credentials: tuple[str, str] | None = None
) -> RegistryServer:
    """Start `docker-registry serve` on a free loopback port and wait until it answers."""
    binary = _require("docker-registry")
    (directory / "data").mkdir(parents=True, exist_ok=True)
    htpasswd = _htpasswd(directory, credentials) if credentials else None
    for _attempt in range(3):  # the free port can be taken before the registry binds it
        port = _free_port()
        config = _CONFIG.format(root=directory / "data", port=port)
        if htpasswd:
            config += _AUTH_CONFIG.format(htpasswd=htpasswd)
        (directory / "config.yml").write_text(config)
        log = directory / "registry.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [binary, "serve", str(directory / "config.yml")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        server = RegistryServer(url=url, process=process, log=log, credentials=credentials)
        try:
            _wait_until_ready(server)
        except RuntimeError:
            server.stop()
            if "address already in use" not in log.read_text():
                raise
            continue
        return server
    raise RuntimeError("docker-registry found no free port in 3 attempts")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An anonymous registry: pull and push without credentials."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry behind htpasswd: anonymous requests get `401 Basic`."""
    directory = tmp_path_factory.mktemp("auth-registry")
    server = start_registry(directory, credentials=AUTH_REGISTRY_CREDENTIALS)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _token_proxy(registry: RegistryServer) -> Iterator[TokenProxy]:
    proxy = TokenProxy(registry.url)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def token_registry(_token_proxy: TokenProxy) -> TokenProxy:
    """The session's Bearer-token front of `registry`, with fresh counters and no faults."""
    _token_proxy.reset()
    return _token_proxy
