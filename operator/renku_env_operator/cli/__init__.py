"""The `renku-env-operator` command: run, validate, export, bump, crd."""

from __future__ import annotations

import click
import yaml

from .. import __version__
from ..api.claim import build_claim_crd
from ..api.crd import build_crd
from .bump import bump_command
from .export import export_command
from .run import run_command
from .validate import validate_command


def render_crd(claims: bool = False) -> str:
    """The CRD as YAML, exactly as stored in crds/ (and the Helm chart)."""
    return yaml.safe_dump(build_claim_crd() if claims else build_crd(), sort_keys=False, width=100)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="renku-env-operator")
def main() -> None:
    """Manage Renku global session environments as Kubernetes resources."""


@main.command("crd")
@click.option(
    "--claims",
    is_flag=True,
    help="Print the GlobalEnvironmentClaim CRD (the operator's ownership records) instead.",
)
def crd_command(claims: bool) -> None:
    """Print the GlobalEnvironment CustomResourceDefinition."""
    click.echo(render_crd(claims), nl=False)


main.add_command(validate_command)
main.add_command(run_command)
main.add_command(export_command)
main.add_command(bump_command)
