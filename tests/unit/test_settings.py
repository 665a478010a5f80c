"""Operator settings from environment variables: parsing, defaults, and errors an admin can act on."""

from __future__ import annotations

import os

import pytest

from renku_env_operator.config import ENV_PREFIX, SettingsError, load_settings

SECRET = "tok-s3cr3t-4f9a"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting leaks in from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX) or name in {"POD_NAMESPACE", "OPERATOR_NAMESPACE"}:
            monkeypatch.delenv(name)
    return monkeypatch


def env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name if name == "POD_NAMESPACE" else f"{ENV_PREFIX}{name}", value)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.namespaces == []
    assert settings.operator_namespace == "default"
    assert settings.smoke_pod_namespace == settings.credentials_namespace == "default"
    assert (settings.metrics_port, settings.tag_policy, settings.renku_token) == (
        9090,
        "Warn",
        None,
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("NAMESPACES", "renku, team-a,,", ["renku", "team-a"]),
        ("NAMESPACES", "", []),
        ("NODE_ARCHITECTURES", "amd64,arm64", ["amd64", "arm64"]),
        ("REGISTRY_INSECURE_HOSTS", "registry.local:5000", ["registry.local:5000"]),
    ],
)
def test_comma_separated_lists(
    clean_env: pytest.MonkeyPatch, name: str, value: str, expected: list[str]
) -> None:
    env(clean_env, **{name: value})
    assert getattr(load_settings(), name.lower()) == expected


def test_json_dict_and_list(clean_env: pytest.MonkeyPatch) -> None:
    env(
        clean_env,
        SMOKE_NODE_SELECTOR='{"nvidia.com/gpu.present": "true"}',
        SMOKE_TOLERATIONS='[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]',
    )
    settings = load_settings()
    assert settings.smoke_node_selector == {"nvidia.com/gpu.present": "true"}
    assert settings.smoke_tolerations == [
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_operator_namespace_from_the_downward_api(clean_env: pytest.MonkeyPatch) -> None:
    env(clean_env, POD_NAMESPACE="renku-system")
    settings = load_settings()
    assert settings.operator_namespace == "renku-system"
    # The smoke pods and the credentials Secret default to the operator's namespace.
    assert settings.smoke_pod_namespace == settings.credentials_namespace == "renku-system"


def test_explicit_settings_win_over_the_downward_api(clean_env: pytest.MonkeyPatch) -> None:
    env(
        clean_env,
        POD_NAMESPACE="renku-system",
        OPERATOR_NAMESPACE="ops",
        SMOKE_NAMESPACE="smoke",
        RENKU_CREDENTIALS_NAMESPACE="secrets",
    )
    settings = load_settings()
    assert (settings.operator_namespace, settings.smoke_pod_namespace) == ("ops", "smoke")
    assert settings.credentials_namespace == "secrets"


def test_cli_overrides_win_and_unset_flags_are_ignored(clean_env: pytest.MonkeyPatch) -> None:
    env(clean_env, METRICS_PORT="9100", LOG_LEVEL="DEBUG")
    settings = load_settings(metrics_port=0, log_level=None)
    assert (settings.metrics_port, settings.log_level) == (0, "DEBUG")


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.metrics_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("METRICS_PORT", "abc", "valid integer"),
        ("METRICS_PORT", "70000", "less than or equal to 65535"),
        ("SMOKE_MAX_CONCURRENT", "0", "greater than or equal to 1"),
        ("LOG_LEVEL", "verbose", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("TAG_POLICY", "Fail", "'Warn' or 'Error'"),
        ("IMAGE_CHECKS", "nope", "valid boolean"),
        ("RENKU_URL", "renku.example.org/api/data", "valid URL"),
        ("SMOKE_NODE_SELECTOR", '["gpu"]', "valid dictionary"),
        ("RENKU_TIMEOUT_SECONDS", "0", "greater than 0"),
    ],
)
def test_a_bad_setting_names_its_environment_variable(
    clean_env: pytest.MonkeyPatch, name: str, value: str, said: str
) -> None:
    env(clean_env, **{name: value})
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"setting {ENV_PREFIX}{name}: " in message
    assert said in message
    # What was read is shown, except where it may hold a secret (tokens, URLs with credentials).
    assert ("(got " in message) is not any(w in name for w in ("TOKEN", "URL", "SECRET"))


def test_every_bad_setting_is_reported_at_once(clean_env: pytest.MonkeyPatch) -> None:
    env(clean_env, METRICS_PORT="abc", LOG_LEVEL="verbose")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert f"{ENV_PREFIX}METRICS_PORT" in str(caught.value)
    assert f"{ENV_PREFIX}LOG_LEVEL" in str(caught.value)


def test_json_that_does_not_parse_names_its_environment_variable(
    clean_env: pytest.MonkeyPatch,
) -> None:
    env(clean_env, SMOKE_TOLERATIONS="key=gpu:NoSchedule")
    with pytest.raises(SettingsError, match=f"{ENV_PREFIX}SMOKE_TOLERATIONS"):
        load_settings()


def test_the_token_never_appears_in_an_error(clean_env: pytest.MonkeyPatch) -> None:
    env(clean_env, RENKU_TOKEN=SECRET, METRICS_PORT="abc")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert SECRET not in str(caught.value)
    # A token of the wrong type (from a flag or a values file) is named, never shown.
    with pytest.raises(SettingsError) as caught:
        load_settings(renku_token=[SECRET])
    assert f"setting {ENV_PREFIX}RENKU_TOKEN: " in str(caught.value)
    assert SECRET not in str(caught.value)


def test_the_token_is_kept_secret_in_the_settings_object(clean_env: pytest.MonkeyPatch) -> None:
    env(clean_env, RENKU_TOKEN=SECRET)
    settings = load_settings()
    assert settings.renku_token is not None
    assert settings.renku_token.get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def test_credentials_in_a_renku_url_are_never_echoed(clean_env: pytest.MonkeyPatch) -> None:
    env(clean_env, RENKU_URL="https://admin:hunter2@renku.example.org:notaport/api/data")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)
    assert f"{ENV_PREFIX}RENKU_URL" in str(caught.value)


def test_a_misspelled_setting_is_refused_with_a_suggestion(clean_env: pytest.MonkeyPatch) -> None:
    env(clean_env, SMOKE_TIMEOUT="60")
    with pytest.raises(
        SettingsError, match="did you mean RENKU_ENV_OPERATOR_SMOKE_TIMEOUT_SECONDS"
    ):
        load_settings()


def test_kubernetes_service_links_are_not_mistaken_for_settings(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv(f"{ENV_PREFIX}METRICS_SERVICE_HOST", "10.0.0.1")
    clean_env.setenv(f"{ENV_PREFIX}METRICS_PORT_9090_TCP_ADDR", "10.0.0.1")
    assert load_settings().metrics_port == 9090


def test_log_level_is_case_insensitive(clean_env: pytest.MonkeyPatch) -> None:
    env(clean_env, LOG_LEVEL="debug")
    assert load_settings().log_level == "DEBUG"


def test_renku_tls_is_verified_with_the_ca_bundle_when_one_is_set(
    clean_env: pytest.MonkeyPatch,
) -> None:
    assert load_settings().renku_verify is True
    clean_env.setenv(f"{ENV_PREFIX}RENKU_CA_BUNDLE", "/etc/renku/ca.pem")
    assert load_settings().renku_verify == "/etc/renku/ca.pem"
