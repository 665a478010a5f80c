"""`renku-env-operator run`: start the operator against the current kubeconfig or in-cluster."""

from __future__ import annotations

import click


@click.command("run")
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="Namespace to watch (repeat); default: all.",
)
@click.option(
    "--renku-url", help="Renku data service root, e.g. https://renku.example.org/api/data."
)
@click.option(
    "--liveness",
    "liveness_endpoint",
    help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz.",
)
@click.option(
    "--metrics-port", type=int, help="Port of the Prometheus /metrics endpoint; 0 disables it."
)
@click.option("--log-format", type=click.Choice(["plain", "full", "json"]), help="Log format.")
@click.option(
    "--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), help="Log level."
)
@click.option("--peering", help="kopf peering name for HA mode.")
def run_command(namespaces: tuple[str, ...], **flags: object) -> None:
    """Run the operator. Every flag also has an environment variable RENKU_ENV_OPERATOR_<NAME>."""
    # Imported here: `validate` must not pay for pydantic-settings, kopf and kubernetes.
    from ..config import SettingsError, load_settings
    from ..runner import StartupError, run_operator

    try:
        settings = load_settings(namespaces=list(namespaces) or None, **flags)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        run_operator(settings)
    except StartupError as exc:
        click.echo(f"error: cannot start: {exc}", err=True)
        raise SystemExit(1) from None
