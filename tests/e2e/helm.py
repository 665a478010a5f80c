"""The helm binary, against the cluster under test, with every call bounded in time.

Works with Helm 3 and 4: no ``--wait`` on install (Helm 4's default, ``hookOnly``, does not wait
for resources either), ``--wait`` on uninstall (both wait until the objects are deleted).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.options import ROOT

CHART = ROOT / "helm" / "renku-env-operator"
RELEASE_LABEL = "app.kubernetes.io/instance"
PEERING_CRDS = ("kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev")
"""The chart's crds/ directory: kopf's peering CRDs, shared by every kopf operator."""
# Names the chart gives an operator image nobody can pull: no operator may run by accident.
UNPULLABLE_IMAGE = {"repository": "registry.invalid/renku-env-operator-e2e", "tag": "never-pulled"}


class HelmError(Exception):
    """helm failed or did not finish in time; the message carries its stderr."""


@dataclass(frozen=True)
class Helm:
    """helm with the e2e kubeconfig and namespace."""

    binary: Path
    kubeconfig: Path
    namespace: str
    workdir: Path
    """Where values files are written."""

    def __call__(self, *args: str, timeout: float = 300.0) -> str:
        """Run helm; its stdout, or HelmError."""
        command = [str(self.binary), *args, "--namespace", self.namespace]
        command += ["--kubeconfig", str(self.kubeconfig)]
        shown = "helm " + " ".join(args)
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise HelmError(f"{shown}: no result within {timeout:g}s") from exc
        if done.returncode != 0:
            raise HelmError(f"{shown}: exit code {done.returncode}\n{done.stderr.strip()}")
        return done.stdout

    def install(self, release: str, values: dict[str, Any], *, skip_crds: bool = True) -> None:
        """helm install the chart with these values (written to a file, not --set).

        `skip_crds` leaves out the chart's crds/ directory (kopf's peering CRDs, which Helm
        never deletes): only a test that removes them afterwards installs them.
        """
        path = self.workdir / f"{release}-values.json"
        path.write_text(json.dumps(values, indent=2), encoding="utf-8")
        extra = ["--skip-crds"] if skip_crds else []
        self("install", release, str(CHART), "--values", str(path), "--timeout", "5m", *extra)

    def uninstall(self, release: str) -> None:
        """helm uninstall, waiting until its objects are deleted."""
        self("uninstall", release, "--wait", "--timeout", "3m", timeout=240.0)

    def manifest(self, release: str) -> list[dict[str, Any]]:
        """The objects helm installed for the release."""
        text = self("get", "manifest", release)
        return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]

    def releases(self) -> set[str]:
        """Names of the releases in the namespace."""
        # Every state a release can be left in; Helm 4 has no --all (it lists all by default),
        # Helm 3 lists only deployed and failed ones without it: these filters mean the same to both.
        states = ["--deployed", "--failed", "--pending", "--superseded", "--uninstalling"]
        listed = json.loads(self("list", *states, "--output", "json") or "[]")
        return {str(item["name"]) for item in listed}

    @contextmanager
    def installed(
        self, release: str, values: dict[str, Any], *, skip_crds: bool = True
    ) -> Iterator[None]:
        """Install; uninstall on the way out (a failed install too) unless the test did."""
        try:
            self.install(release, values, skip_crds=skip_crds)
            yield
        finally:
            if release in self.releases():
                self.uninstall(release)


def chart_values(namespace: str, secret: str, **overrides: Any) -> dict[str, Any]:
    """Values for a test release: Renku at an address that does not resolve, our Secret."""
    values: dict[str, Any] = {
        "renku": {
            "url": f"http://renku-e2e-nowhere.{namespace}.svc.cluster.local/api/data",
            "credentials": {"existingSecret": secret},
        },
        "image": dict(UNPULLABLE_IMAGE),
        "crds": {"install": False},
        # Any address (the chart requires a choice): which addresses a test cluster's API
        # server connects from is not known here; cluster.cidrs would keep the cluster's pods out.
        "smoke": {"networkPolicy": {"apiServerCIDRs": ["0.0.0.0/0", "::/0"]}},
        # The tests read /healthz through the API server's pod proxy: let it reach the port.
        "networkPolicy": {"healthzFrom": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]},
    }
    values.update(overrides)
    return values


def image_values(reference: str) -> dict[str, str]:
    """``repo[:tag][@digest]`` as the chart's image values."""
    name, _, digest = reference.partition("@")
    repository, tag = name, ""
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        repository, tag = name[:colon], name[colon + 1 :]
    values = {"repository": repository, "pullPolicy": "IfNotPresent"}
    if tag:
        values["tag"] = tag
    if digest:
        values["digest"] = digest
    return values
