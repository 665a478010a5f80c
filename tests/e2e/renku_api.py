"""Renku as the e2e tests see it: a real data service (--renku-url) or the loopback test double.

Both are read over the same HTTP API (reads need no token). Every environment a test makes is
named with the run's prefix, so ``remove_created`` finds and deletes them all afterwards, even
those of a test that failed before it learnt their ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

TIMEOUT = 15.0


class RenkuCleanupError(Exception):
    """Environments made by the tests could not be removed from Renku."""


@dataclass
class RenkuApi:
    """The environments API at `url` (the data service root, ``.../api/data``)."""

    url: str
    token: str
    prefix: str
    """Display names of this test's environments start with it."""
    _http: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._http = httpx.Client(base_url=self.url.rstrip("/") + "/", timeout=TIMEOUT)

    def name_for(self, what: str) -> str:
        """A display name (at most 99 characters) this test's clean-up will find."""
        return f"{self.prefix} {what}"[:99]

    def get(self, env_id: str) -> dict[str, Any] | None:
        """The environment, or None when Renku does not know the id."""
        answer = self._http.get(f"environments/{env_id}")
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        env: dict[str, Any] = answer.json()
        return env

    def named(self, name: str) -> list[dict[str, Any]]:
        """Environments with this display name, archived ones included."""
        return [env for env in self._all() if env.get("name") == name]

    def remove_created(self) -> None:
        """Delete every environment named with the prefix (archive one that launchers use)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        failed = []
        for env in self._all():
            if not str(env.get("name", "")).startswith(self.prefix):
                continue
            answer = self._http.delete(f"environments/{env['id']}", headers=headers)
            if answer.status_code >= 300:
                # CONTRACT: a 500 while launchers use it; archiving hides it at least.
                archived = self._http.patch(
                    f"environments/{env['id']}", json={"is_archived": True}, headers=headers
                )
                if archived.status_code >= 300:
                    failed.append(f"{env['id']} ({env.get('name')}): HTTP {answer.status_code}")
        if failed:
            raise RenkuCleanupError(f"left behind in Renku at {self.url}: {', '.join(failed)}")

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _all(self) -> list[dict[str, Any]]:
        answer = self._http.get("environments", params={"include_archived": "true"})
        answer.raise_for_status()
        envs: list[dict[str, Any]] = answer.json()
        return envs
