"""`renku-env-operator export`: GlobalEnvironment manifests for the environments Renku has.

Reads Renku with the URL and credentials the operator itself would use (its settings), so that
what the admin reviews is what the operator will see. Writes multi-document YAML to stdout, or
one file per environment into a directory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

from ..domain.redact import redact

if TYPE_CHECKING:
    import httpx

    from ..config import Settings
    from ..domain.export import Exported

EXIT_FAILED = 1


class ExportError(Exception):
    """Export cannot go on; the message says what to do."""


def render(exported: Exported, source: str) -> str:
    """One manifest as YAML, with the notes an admin must read as comments."""
    env_id = exported.manifest["spec"]["renkuId"]
    text = yaml.safe_dump(exported.manifest, sort_keys=False, width=100, allow_unicode=True)
    lines = [f"# Exported from {source}: environment {env_id}."]
    lines.append("# Applying this adopts the environment (spec.renkuId): review it first.")
    for line in text.splitlines():
        if exported.pin_note and line.startswith("  image:"):
            lines.append(f"  # TODO: {exported.pin_note}")
        lines.append(line)
    return "\n".join(lines) + "\n"


async def _read_environments(
    settings: Settings,
    token_file: Path | None,
    secret: str | None,
    namespace: str | None,
    include_archived: bool,
) -> list[dict[str, Any]]:
    from ..clients.renku import RenkuClient
    from ..clients.renku_errors import RenkuError

    auth = await _auth(settings, token_file, secret, namespace)
    renku = RenkuClient(
        str(settings.renku_url),
        auth,
        verify=settings.renku_verify,
        timeout=settings.renku_timeout_seconds,
        retry_attempts=settings.renku_retry_attempts,
    )
    try:
        return await renku.list_environments(include_archived=include_archived)
    except RenkuError as exc:
        where = redact(str(settings.renku_url))
        raise ExportError(f"cannot read environments from {where}: {redact(str(exc))}") from None
    finally:
        await renku.aclose()


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read the token file {path}: {exc}") from None
    if not token:
        raise ExportError(f"the token file {path} is empty")
    return token


async def _auth(
    settings: Settings, token_file: Path | None, secret: str | None, namespace: str | None
) -> httpx.Auth | None:
    """The operator's credentials: a token file, a Secret, or its own settings. Renku lists
    environments to anyone, so without credentials the request goes out anonymous."""
    from pydantic import SecretStr

    from ..clients.renku_auth import StaticToken, auth_for, credentials_from_secret_data

    if token_file is not None:
        return auth_for(StaticToken(token=SecretStr(_read_token(token_file))))
    if secret is None and settings.renku_token is not None:
        return auth_for(StaticToken(token=settings.renku_token))
    name = secret or settings.renku_credentials_secret
    if not name:
        return None
    secret_namespace = namespace or settings.credentials_namespace
    from ..clients.kube import KubeClient, KubeError

    try:
        kube = KubeClient.from_environment()
    except KubeError as exc:
        raise ExportError(f"cannot read the credentials Secret: {exc}") from None
    try:
        data = await kube.get_secret_data(secret_namespace, name)
        return auth_for(credentials_from_secret_data(data))
    except (KubeError, ValueError) as exc:
        raise ExportError(f"credentials Secret {secret_namespace}/{name}: {exc}") from None
    finally:
        await kube.close()


@click.command("export")
@click.option("--renku-url", help="Renku data service root; default RENKU_ENV_OPERATOR_RENKU_URL.")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding a Renku bearer token.",
)
@click.option(
    "--credentials-secret",
    help="Secret with the operator's Renku credentials (keys token, or clientId, clientSecret "
    "and tokenUrl), read with the current kubeconfig; default "
    "RENKU_ENV_OPERATOR_RENKU_CREDENTIALS_SECRET.",
)
@click.option(
    "--namespace",
    "-n",
    help="metadata.namespace of the manifests (use the operator's namespace, where adoption is "
    "allowed), and the namespace of the credentials Secret.",
)
@click.option("--include-archived", is_flag=True, help="Also export archived environments.")
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one <name>.yaml per environment here instead of YAML to stdout.",
)
def export_command(
    renku_url: str | None,
    token_file: Path | None,
    credentials_secret: str | None,
    namespace: str | None,
    include_archived: bool,
    output_dir: Path | None,
) -> None:
    """Write GlobalEnvironment manifests for the environments Renku already has.

    Each sets spec.renkuId, so applying it adopts the environment instead of creating a copy,
    and every field Renku holds. Images without a tag or with `latest` get a TODO comment:
    pin a version before applying. Exit 1 when Renku cannot be read.
    """
    from ..config import SettingsError, load_settings
    from ..domain.export import export_manifests

    try:
        settings = load_settings(renku_url=renku_url)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    if settings.renku_url is None:
        raise click.UsageError("no Renku URL: pass --renku-url or set RENKU_ENV_OPERATOR_RENKU_URL")
    try:
        environments = asyncio.run(
            _read_environments(
                settings, token_file, credentials_secret, namespace, include_archived
            )
        )
    except ExportError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_FAILED) from None
    exported = export_manifests(environments, namespace)
    # The files are meant for Git: never a user:password@ of the URL in their comments.
    source = f"Renku at {redact(str(settings.renku_url))}"
    documents = [render(e, source) for e in exported]
    if output_dir is None:
        click.echo("---\n".join(documents), nl=False)
    else:
        output_dir.mkdir(parents=True, exist_ok=True)
        for item, text in zip(exported, documents, strict=True):
            (output_dir / f"{item.name}.yaml").write_text(text, encoding="utf-8")
    pins = sum(e.pin_note is not None for e in exported)
    click.echo(
        f"{len(exported)} environment(s) exported"
        + (f", {pins} with an image to pin (see the TODO comments)" if pins else ""),
        err=True,
    )
