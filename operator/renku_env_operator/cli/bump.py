"""`renku-env-operator bump`: write into Git only the image tags the operator has smoke-tested.

For every GlobalEnvironment manifest under the paths (the discovery of `validate`), the object
is looked up in the cluster (or in `kubectl get genv -A -o json` output) and spec.image is set
to the newer tag whose update test passed (status.image.updateTest), pinned to the tested
digest when the file pins digests. Only that scalar's characters change (cli/bump_edit.py).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from ..api import crd
from ..domain import bump as decide_
from .bump_edit import Spot, apply, spots
from .manifests import Document, ParseError, Source, expand, read_documents, read_text
from .manifests import template_line as find_template

EXIT_BUMP_AVAILABLE = 1  # --check
EXIT_USAGE = 2
KUSTOMIZATIONS = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})

Key = tuple[str, str]  # (namespace, name)
Lookup = Callable[[list[Key]], dict[Key, "dict[str, Any] | str | None"]]


class BumpUsageError(Exception):
    """bump cannot run; the message says what to do."""


@dataclass
class Result:
    source: str
    document: int
    item: int | None
    namespace: str | None
    name: str | None
    action: str  # bump, current, skip
    reason: str
    message: str
    image: str | None = None
    new_image: str | None = None
    tested_image: str | None = None
    tested_at: str | None = None

    def text(self, check: bool) -> str:
        where = f"{self.source}: document {self.document}"
        if self.item is not None:
            where += f" item {self.item}"
        what = f"GlobalEnvironment {self.namespace or '?'}/{self.name or '?'}"
        if self.action == "bump":
            verb = "would bump" if check else "bumped"
            return f"{where} ({what}): {verb} {self.image} -> {self.new_image} ({self.message})"
        if self.action == "current":
            return f"{where} ({what}): up to date: {self.message}"
        return f"{where} ({what}): skipped ({self.reason}): {self.message}"


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(r.action == action for r in self.results)

    def as_json(self) -> dict[str, Any]:
        return {
            "checked": len(self.results),
            "bumps": self.count("bump"),
            "current": self.count("current"),
            "skipped": self.count("skip"),
            "written": self.written,
            "results": [asdict(r) for r in self.results],
            "errors": self.errors,
        }


# -- finding the manifests -------------------------------------------------------------------


@dataclass
class Target:
    """One GlobalEnvironment in a file, and where its image is written."""

    source: Source
    document: Document
    item: int | None
    spot: Spot | None
    key: Key | None
    image: Any


def _objects(document: Document) -> list[tuple[int | None, Any]]:
    data = document.data
    if isinstance(data, Mapping):
        kind, items = data.get("kind"), data.get("items")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
            return list(enumerate(items))
    return [(None, data)]


def _is_genv(data: Any) -> bool:
    return (
        isinstance(data, Mapping)
        and data.get("kind") == crd.KIND
        and str(data.get("apiVersion", "")).partition("/")[0] == crd.GROUP
    )


def _key(data: Mapping[str, Any], namespace: str | None) -> Key | None:
    metadata = data.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name, ns = metadata.get("name"), metadata.get("namespace") or namespace
    return (str(ns), str(name)) if isinstance(name, str) and ns else None


def _patched_names(sources: list[Source]) -> tuple[dict[str, str], dict[str, str]]:
    """From the kustomizations among the inputs: patch files (path -> kustomization), and the
    GlobalEnvironments whose image a patch sets (name, or * for all -> kustomization)."""
    files: dict[str, str] = {}
    names: dict[str, str] = {}
    for source in sources:
        path = Path(source.path)
        if path.name not in KUSTOMIZATIONS:
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if not isinstance(data, Mapping):
            continue
        label = source.label
        entries: list[Any] = list(data.get("patchesStrategicMerge") or [])
        entries += list(data.get("patches") or []) + list(data.get("patchesJson6902") or [])
        for entry in entries:
            body: Any = None
            target = entry.get("target") if isinstance(entry, Mapping) else None
            file = entry if isinstance(entry, str) else None
            if isinstance(entry, Mapping):
                file = entry.get("path") if isinstance(entry.get("path"), str) else None
                body = entry.get("patch")
            if file is not None and not file.lstrip().startswith(("apiVersion", "{", "-")):
                resolved = (path.parent / file).resolve()
                files[str(resolved)] = label
                try:
                    body = resolved.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    body = None
            elif isinstance(file, str):
                body = file  # an inline strategic-merge patch
            for name in _names_patched(body, target):
                names.setdefault(name, label)
    return files, names


def _names_patched(body: Any, target: Any) -> list[str]:
    if not isinstance(body, str):
        return []
    try:
        documents = list(yaml.safe_load_all(body))
    except yaml.YAMLError:
        return []
    names: list[str] = []
    for doc in documents:
        if isinstance(doc, list):  # JSON 6902: the target names the object
            touches = any(isinstance(op, Mapping) and op.get("path") == "/spec/image" for op in doc)
            kind = target.get("kind") if isinstance(target, Mapping) else None
            if touches and kind in (None, crd.KIND):
                names.append(str(target.get("name") or "*") if isinstance(target, Mapping) else "*")
        elif _is_genv(doc) or (isinstance(doc, Mapping) and doc.get("kind") == crd.KIND):
            spec = doc.get("spec")
            if isinstance(spec, Mapping) and "image" in spec:
                metadata = doc.get("metadata") or {}
                names.append(str(metadata.get("name") or "*"))
    return names


# -- the run ---------------------------------------------------------------------------------


def run_bump(paths: list[str], lookup: Lookup, namespace: str | None, check: bool) -> Report:
    report = Report()
    sources, report.errors = expand(paths)
    if any(s.path == "-" for s in sources):
        report.errors.append("-: bump edits files in place; standard input cannot be bumped")
        sources = [s for s in sources if s.path != "-"]
    patch_files, patched = _patched_names(sources)
    per_file: list[tuple[Source, str, list[Target]]] = []
    for source in sources:
        found = _targets(source, report, patch_files, patched, namespace)
        if found is not None:
            per_file.append(found)
    keys = sorted({t.key for _, _, ts in per_file for t in ts if t.key is not None})
    objects = lookup(keys) if keys else {}
    for source, text, targets in per_file:
        edits: list[tuple[Spot, str]] = []
        for target in targets:
            result = _judge(target, objects)
            report.results.append(result)
            if result.action == "bump" and result.new_image and target.spot is not None:
                edits.append((target.spot, result.new_image))
        if edits and not check:
            _write(source, text, edits, targets, report)
    report.results.sort(key=lambda r: (r.source, r.document, -1 if r.item is None else r.item))
    return report


def _targets(
    source: Source,
    report: Report,
    patch_files: dict[str, str],
    patched: dict[str, str],
    namespace: str | None,
) -> tuple[Source, str, list[Target]] | None:
    text = read_text(source)
    if isinstance(text, ParseError):
        return None
    documents = [d for d in read_documents(source, text) if isinstance(d, Document)]
    located = _located(text) if documents else {}
    targets: list[Target] = []
    for document in documents:
        for item, data in _objects(document):
            if not _is_genv(data):
                continue
            spec = data.get("spec")
            image = spec.get("image") if isinstance(spec, Mapping) else None
            target = Target(
                source, document, item, located.get((document.index, item)), None, image
            )
            skipped = _file_skip(source, text, data, patch_files, patched, target)
            if skipped is not None:
                report.results.append(_result(target, data, "skip", *skipped))
                continue
            target.key = _key(data, namespace)
            if target.key is None:
                why = "no metadata.namespace: pass --namespace (where Argo CD applies it)"
                report.results.append(_result(target, data, "skip", "NoNamespace", why))
                continue
            targets.append(target)
    return source, text, targets


def _located(text: str) -> dict[tuple[int, int | None], Spot]:
    try:
        return {(s.document, s.item): s for s in spots(text)}
    except yaml.YAMLError:  # libyaml read it, the pure reader did not: report, never guess
        return {}


def _file_skip(
    source: Source,
    text: str,
    data: Mapping[str, Any],
    patch_files: dict[str, str],
    patched: dict[str, str],
    target: Target,
) -> tuple[str, str] | None:
    line = find_template(text)
    if line is not None:
        return (
            "Templated",
            f"template expression ({{{{ ... }}}}) on line {line}: edit the chart's values",
        )
    kustomization = patch_files.get(str(Path(source.path).resolve()))
    if kustomization is not None:
        return "KustomizePatch", f"a patch of {kustomization}: bump edits base manifests only"
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    by = patched.get(str(name)) or patched.get("*")
    if by is not None:
        return "KustomizePatch", f"spec.image is patched in {by}: change it there"
    if not isinstance(target.image, str):
        return "NoImage", "spec.image is missing or not a string"
    if target.spot is None:
        return "NoImage", "spec.image could not be located in the file"
    if target.spot.problem is not None:
        return target.spot.problem, target.spot.why
    return None


def _result(
    target: Target, data: Mapping[str, Any], action: str, reason: str, message: str
) -> Result:
    metadata = data.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    return Result(
        source=target.source.label,
        document=target.document.index,
        item=target.item,
        namespace=target.key[0] if target.key else metadata.get("namespace"),
        name=target.key[1] if target.key else metadata.get("name"),
        action=action,
        reason=reason,
        message=message,
        image=target.image if isinstance(target.image, str) else None,
    )


def _judge(target: Target, objects: Mapping[Key, dict[str, Any] | str | None]) -> Result:
    assert target.key is not None
    data = (
        target.document.data if target.item is None else target.document.data["items"][target.item]
    )
    found = objects.get(target.key)
    if isinstance(found, str):
        return _result(target, data, "skip", "LookupFailed", found)
    decision = decide_.decide(str(target.image), found)
    result = _result(target, data, decision.action, decision.reason, decision.message)
    result.new_image = decision.new_image
    result.tested_image = decision.tested_image
    result.tested_at = decision.tested_at
    return result


def _write(
    source: Source, text: str, edits: list[tuple[Spot, str]], targets: list[Target], report: Report
) -> None:
    new_text = apply(text, edits, source.is_json)
    # The edit must change exactly the images it meant to: read the result back and compare.
    wanted = {(s.document, s.item): image for s, image in edits}
    after = [d for d in read_documents(source, new_text) if isinstance(d, Document)]
    before = [t.document for t in targets]
    ok = len(after) >= len({d.index for d in before})
    for document in after:
        for item, data in _objects(document):
            image = wanted.get((document.index, item))
            if image is not None:
                spec = data.get("spec") if isinstance(data, Mapping) else None
                ok = ok and isinstance(spec, Mapping) and spec.get("image") == image
    if not ok:
        report.errors.append(f"{source.label}: the edit did not read back as intended: not written")
        return
    Path(source.path).write_bytes(new_text.encode("utf-8"))
    report.written.append(source.label)


# -- reading the cluster ---------------------------------------------------------------------


def status_file_lookup(path: Path) -> Lookup:
    """Objects from `kubectl get globalenvironments -A -o json` (or -o yaml) output."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BumpUsageError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, Mapping):
        raise BumpUsageError(f"{path}: expected kubectl get genv -A -o json output (a List)")
    items = data.get("items") if "items" in data else [data]
    if not isinstance(items, list):
        raise BumpUsageError(f"{path}: expected kubectl get genv -A -o json output (a List)")
    known: dict[Key, dict[str, Any]] = {}
    for obj in items:
        if isinstance(obj, dict) and isinstance(obj.get("metadata"), Mapping):
            key = _key(obj, None)
            if key is not None:
                known[key] = obj

    def lookup(keys: list[Key]) -> dict[Key, dict[str, Any] | str | None]:
        return {k: known.get(k) for k in keys}

    return lookup


def cluster_lookup(kubeconfig: str | None, context: str | None) -> Lookup:
    """Each object read from the API server with the kubeconfig's credentials (GET, no list:
    rights in the manifests' namespaces are enough)."""
    from ..clients.kube import KubeClient, KubeError, KubeNotFoundError, custom_path

    # $KUBECONFIG wins over a pod's own ServiceAccount (CI runners that run in a cluster).
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        kube = KubeClient.from_environment(kubeconfig, context=context)
    except KubeError as exc:
        raise BumpUsageError(str(exc)) from None

    async def read(keys: list[Key]) -> dict[Key, dict[str, Any] | str | None]:
        found: dict[Key, dict[str, Any] | str | None] = {}
        try:
            for namespace, name in keys:
                path = custom_path(crd.GROUP, crd.VERSION, crd.PLURAL, namespace, name)
                try:
                    found[(namespace, name)] = await kube.request("GET", path)
                except KubeNotFoundError:
                    found[(namespace, name)] = None
                except KubeError as exc:
                    found[(namespace, name)] = f"cannot read it from {kube.server}: {exc}"
        finally:
            await kube.close()
        return found

    return lambda keys: asyncio.run(read(keys))


@click.command("bump")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--from-status",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the objects from this file (kubectl get genv -A -o json) instead of the cluster.",
)
@click.option("--kubeconfig", help="Kubeconfig file; default $KUBECONFIG or ~/.kube/config.")
@click.option("--context", help="Kubeconfig context; default the current one.")
@click.option(
    "--namespace", "-n", help="Namespace of manifests without metadata.namespace (Argo CD's)."
)
@click.option("--check", is_flag=True, help="Change nothing; exit 1 when a bump is available.")
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def bump_command(
    paths: tuple[str, ...],
    from_status: Path | None,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    check: bool,
    output: str,
) -> None:
    """Set spec.image in the GlobalEnvironment manifests in PATHS to the newer tag the operator
    has smoke-tested (status.image.updateTest passed), and change nothing else in the files.

    Objects whose status cannot be read, untested or failed updates, images set through Helm
    templates or Kustomize patches are skipped with the reason. Exit 0 when done, 1 with
    --check when a bump is available, 2 on usage errors or when the cluster cannot be read.
    """
    try:
        lookup = (
            status_file_lookup(from_status)
            if from_status is not None
            else cluster_lookup(kubeconfig, context)
        )
    except BumpUsageError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    report = run_bump(list(paths), lookup, namespace, check)
    if output == "json":
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        for result in report.results:
            click.echo(result.text(check))
        click.echo(_summary(report, check))
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    failed = any(r.reason == "LookupFailed" for r in report.results)
    if report.errors or failed:
        raise SystemExit(EXIT_USAGE)
    if check and report.count("bump"):
        raise SystemExit(EXIT_BUMP_AVAILABLE)


def _summary(report: Report, check: bool) -> str:
    bumps = report.count("bump")
    verb = "bump(s) available" if check else "bumped"
    return (
        f"{len(report.results)} GlobalEnvironment(s) checked, {bumps} {verb}, "
        f"{report.count('current')} up to date, {report.count('skip')} skipped"
    )
