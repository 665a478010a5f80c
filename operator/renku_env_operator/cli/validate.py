"""`renku-env-operator validate`: check GlobalEnvironment manifests offline, before ArgoCD does.

Every file is judged on its own and the run always finishes: a file that cannot be parsed is a
finding (with line and column), templates are skipped with a note, and `-o json` always prints
one complete report.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import click

from ..api import crd
from ..domain.validation import Problem, validate_manifest
from .manifests import Document, ParseError, Source, expand, read_documents, read_text
from .manifests import template_line as find_template

EXIT_INVALID = 1
EXIT_USAGE = 2
UNPARSED = "(not parsed)"


@dataclass
class Finding:
    source: str
    document: int
    object: str
    field: str
    line: int | None
    column: int | None
    severity: str
    message: str

    def text(self) -> str:
        where = self.source
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: {self.severity}: document {self.document} ({self.object}): {self.field}: {self.message}"


@dataclass
class Skipped:
    source: str
    reason: str


@dataclass
class Summary:
    files: int = 0
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # usage errors: exit 2

    @property
    def invalid(self) -> int:
        """Objects (or unparsable files) with at least one error."""
        return len(
            {(f.source, f.document, f.object) for f in self.findings if f.severity == "error"}
        )

    @property
    def unparsed(self) -> int:
        return sum(f.object == UNPARSED for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.severity == "warning" for f in self.findings)

    def as_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "checked": self.checked,
            "invalid": self.invalid,
            "findings": [asdict(f) for f in self.findings],
            "skipped": [asdict(s) for s in self.skipped],
            "errors": self.errors,
        }


def _object_name(data: Mapping[str, Any]) -> str:
    metadata = data.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    namespace = metadata.get("namespace")
    name = metadata.get("name", "<no name>")
    kind = data.get("kind") or "<no kind>"
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _finding(document: Document, problem: Problem, name: str) -> Finding:
    path = (*document.prefix, *problem.path)
    line, column = document.position(problem.path)
    return Finding(
        source=document.source,
        document=document.index,
        object=name,
        field=Problem(path, problem.message).field,
        line=line,
        column=column,
        severity=problem.severity,
        message=problem.message,
    )


def check_document(document: Document) -> list[Finding]:
    """Findings of one GlobalEnvironment document."""
    name = _object_name(document.data)
    return [_finding(document, p, name) for p in validate_manifest(document.data)]


def _objects(document: Document) -> Iterator[Document]:
    """The document, or the items of a `kind: List` (and `kind: <X>List`), as kubectl reads them."""
    data = document.data
    kind = data.get("kind") if isinstance(data, Mapping) else None
    items = data.get("items") if isinstance(data, Mapping) else None
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        for position, item in enumerate(items):
            yield Document(
                document.source,
                document.index,
                item,
                document.node,
                (*document.prefix, "items", position),
                document._cached,
            )
    else:
        yield document


def _near_miss(data: Any) -> Problem | None:
    """A kind that looks like a misspelt GlobalEnvironment in Renku's API group."""
    if not isinstance(data, Mapping):
        return None
    kind, api_version = data.get("kind"), str(data.get("apiVersion", ""))
    if not isinstance(kind, str) or kind == crd.KIND or not api_version.startswith(crd.GROUP):
        return None
    if difflib.SequenceMatcher(None, kind.lower(), crd.KIND.lower()).ratio() < 0.85:
        return None
    return Problem(
        ("kind",),
        f"unknown kind {kind!r} in {crd.GROUP}: did you mean {crd.KIND!r}? (kinds are "
        "case-sensitive; the API server would refuse this document)",
    )


def _judges(data: Any) -> bool:
    """GlobalEnvironments, including those with a wrong apiVersion (that is a finding)."""
    if not isinstance(data, Mapping) or data.get("kind") != crd.KIND:
        return False
    group = str(data.get("apiVersion", "")).partition("/")[0]
    return group in {"", crd.GROUP} or group.startswith("renku")


def validate_source(source: Source, summary: Summary) -> None:
    """Judge one file: findings, a skip note, or nothing (no GlobalEnvironment in it)."""
    summary.files += 1
    text = read_text(source)
    if isinstance(text, ParseError):
        summary.findings.append(_parse_finding(source, text))
        return
    line = find_template(text)
    if line is not None:
        summary.skipped.append(
            Skipped(
                source.label,
                f"template expression ({{{{ ... }}}}) on line {line}: validate the rendered "
                "output instead, e.g. helm template . | renku-env-operator validate -",
            )
        )
        return
    for parsed in read_documents(source, text):
        if isinstance(parsed, ParseError):
            summary.findings.append(_parse_finding(source, parsed))
            return
        for document in _objects(parsed):
            _judge(document, summary)


def _judge(document: Document, summary: Summary) -> None:
    miss = _near_miss(document.data)
    if miss is not None:
        summary.findings.append(_finding(document, miss, _object_name(document.data)))
        return
    if not _judges(document.data):
        return
    summary.checked += 1
    try:
        summary.findings.extend(check_document(document))
    except Exception as exc:  # a bug must not cost the other files their report
        problem = Problem(
            (), f"could not be checked ({type(exc).__name__}: {exc}): please report this"
        )
        summary.findings.append(_finding(document, problem, _object_name(document.data)))


def _parse_finding(source: Source, error: ParseError) -> Finding:
    return Finding(
        source=source.label,
        document=error.document,
        object=UNPARSED,
        field="(document)",
        line=error.line,
        column=error.column,
        severity="error",
        message=error.message,
    )


def run_validate(paths: list[str]) -> Summary:
    """Validate every GlobalEnvironment found in `paths`; other kinds are left alone."""
    summary = Summary()
    sources, summary.errors = expand(paths)
    for source in sources:
        validate_source(source, summary)
    return summary


@click.command("validate")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def validate_command(paths: tuple[str, ...], output: str) -> None:
    """Check GlobalEnvironment manifests in PATHS (files, directories, - for stdin).

    Directories are searched for .yaml, .yml and .json files (not hidden directories); files
    with template expressions ({{ }}) are skipped; `kind: List` items are checked.

    Exit 0 when all are valid, 1 when any is invalid, 2 on usage errors.
    """
    summary = run_validate(list(paths))
    if output == "json":
        click.echo(json.dumps(summary.as_json(), indent=2))
    else:
        for finding in summary.findings:
            click.echo(finding.text())
        for skipped in summary.skipped:
            click.echo(f"{skipped.source}: skipped: {skipped.reason}", err=True)
        click.echo(_summary_line(summary))
    for error in summary.errors:
        click.echo(f"error: {error}", err=True)
    if summary.errors:
        raise SystemExit(EXIT_USAGE)
    if summary.invalid:
        raise SystemExit(EXIT_INVALID)


def _summary_line(summary: Summary) -> str:
    line = (
        f"{summary.checked} GlobalEnvironment(s) checked, {summary.invalid} invalid, "
        f"{summary.warnings} warning(s)"
    )
    extra = []
    if summary.unparsed:
        extra.append(f"{summary.unparsed} file(s) not parsed")
    if summary.skipped:
        extra.append(f"{len(summary.skipped)} skipped")
    return f"{line}; {', '.join(extra)}" if extra else line
