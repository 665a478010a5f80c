"""`renku-env-operator validate`: check GlobalEnvironment manifests offline, before ArgoCD does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ..domain.validation import Problem, is_global_environment, validate_manifest
from .manifests import Document, ManifestError, expand, read_documents

EXIT_INVALID = 1
EXIT_USAGE = 2


@dataclass
class Finding:
    source: str
    document: int
    object: str
    field: str
    line: int | None
    severity: str
    message: str

    def text(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.severity}: document {self.document} ({self.object}): {self.field}: {self.message}"


@dataclass
class Summary:
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return len({(f.source, f.document) for f in self.findings if f.severity == "error"})


def _object_name(data: Any) -> str:
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    namespace = metadata.get("namespace")
    name = metadata.get("name", "<no name>")
    return f"GlobalEnvironment {namespace}/{name}" if namespace else f"GlobalEnvironment {name}"


def check_document(document: Document) -> list[Finding]:
    problems: list[Problem] = validate_manifest(document.data)
    return [
        Finding(
            source=document.source,
            document=document.index,
            object=_object_name(document.data),
            field=problem.field,
            line=document.line_of(problem.path),
            severity=problem.severity,
            message=problem.message,
        )
        for problem in problems
    ]


def run_validate(paths: list[str]) -> Summary:
    """Validate every GlobalEnvironment found; other kinds in directories are skipped."""
    summary = Summary()
    for source, explicit in expand(paths):
        found = 0
        try:
            documents = list(read_documents(source))
        except ManifestError:
            # A directory may hold Helm templates and other non-YAML: skip those, unless the
            # file claims to hold a GlobalEnvironment.
            if explicit or _mentions_global_environment(source):
                raise
            summary.skipped.append(source)
            continue
        for document in documents:
            if not is_global_environment(document.data):
                continue
            found += 1
            summary.checked += 1
            summary.findings.extend(check_document(document))
        if explicit and found == 0:
            label = "standard input" if source == "-" else source
            raise ManifestError(
                f"{label}: no GlobalEnvironment found (expected apiVersion renku.io/v1alpha1, "
                "kind GlobalEnvironment)"
            )
    return summary


def _mentions_global_environment(source: str) -> bool:
    try:
        return "GlobalEnvironment" in Path(source).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True


@click.command("validate")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def validate_command(paths: tuple[str, ...], output: str) -> None:
    """Check GlobalEnvironment manifests in PATHS (files, directories, - for stdin).

    Exit 0 when all are valid, 1 when any is invalid, 2 on usage errors.
    """
    try:
        summary = run_validate(list(paths))
    except ManifestError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    if output == "json":
        click.echo(json.dumps(_as_json(summary), indent=2))
    else:
        for finding in summary.findings:
            click.echo(finding.text())
        for source in summary.skipped:
            click.echo(
                f"{source}: skipped: not valid YAML and no GlobalEnvironment in it", err=True
            )
        click.echo(
            f"{summary.checked} GlobalEnvironment(s) checked, {summary.invalid} invalid, "
            f"{sum(f.severity == 'warning' for f in summary.findings)} warning(s)"
        )
    if summary.invalid:
        raise SystemExit(EXIT_INVALID)


def _as_json(summary: Summary) -> dict[str, Any]:
    return {
        "checked": summary.checked,
        "invalid": summary.invalid,
        "findings": [finding.__dict__ for finding in summary.findings],
        "skipped": summary.skipped,
    }
