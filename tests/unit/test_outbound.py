"""The address rules for registry targets (domain/outbound.py): public only, unless allowlisted."""

from __future__ import annotations

import pytest

from renku_env_operator.config import Settings, SettingsError, load_settings
from renku_env_operator.domain.outbound import AddressPolicy, OutboundRuleError

DEFAULT = AddressPolicy.of()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00:ec2::254", "unique-local"),
        ("100.64.0.1", "not globally routable"),  # CGNAT
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "private"),  # reserved; Python files 240/4 under private
        ("224.0.0.1", "multicast"),
        ("::ffff:169.254.169.254", "link-local"),  # IPv4-mapped
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ],
)
def test_internal_addresses_are_refused_and_named(address: str, kind: str) -> None:
    refusal = DEFAULT.refusal("registry.example", 443, [address])
    assert refusal is not None
    assert kind in refusal
    assert "RENKU_ENV_OPERATOR_REGISTRY_INTERNAL_ALLOWLIST" in refusal


def test_public_addresses_pass() -> None:
    assert DEFAULT.refusal("ghcr.io", 443, ["140.82.121.34", "2606:50c0:8000::154"]) is None


def test_one_internal_address_among_public_ones_is_enough_to_refuse() -> None:
    assert DEFAULT.refusal("rebind.example", 443, ["140.82.121.34", "10.0.0.5"]) is not None
    assert DEFAULT.refusal("nothing.example", 443, []) is not None


def test_the_cluster_ranges_are_refused_even_when_public() -> None:
    policy = AddressPolicy.of(cluster_cidrs=["34.118.224.0/20"])  # GKE service range style
    refusal = policy.refusal("svc.example", 443, ["34.118.230.7"])
    assert refusal is not None
    assert "CLUSTER_CIDRS" in refusal


@pytest.mark.parametrize(
    ("entry", "host", "port", "address", "allowed"),
    [
        ("mirror.internal", "mirror.internal", 5000, "10.1.1.1", True),
        ("Mirror.Internal", "mirror.internal", 443, "10.1.1.1", True),
        ("mirror.internal:5000", "mirror.internal", 5000, "10.1.1.1", True),
        ("mirror.internal:5000", "mirror.internal", 5001, "10.1.1.1", False),
        ("10.1.0.0/16", "anything.internal", 443, "10.1.1.1", True),
        ("10.1.0.0/16", "anything.internal", 443, "10.2.1.1", False),
        ("127.0.0.1", "localhost", 5000, "127.0.0.1", True),
        ("[::1]:5000", "::1", 5000, "::1", True),
    ],
)
def test_the_allowlist(entry: str, host: str, port: int, address: str, allowed: bool) -> None:
    policy = AddressPolicy.of([entry])
    assert (policy.refusal(host, port, [address]) is None) is allowed


@pytest.mark.parametrize("entry", ["mirror:port", "10.0.0.0/33", "host:99999", "[::1]x"])
def test_a_bad_allowlist_entry_is_refused(entry: str) -> None:
    with pytest.raises(OutboundRuleError, match=r"is not|port"):
        AddressPolicy.of([entry])


def test_settings_name_the_bad_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENKU_ENV_OPERATOR_CLUSTER_CIDRS", "10.96.0.0/12,not-a-range")
    with pytest.raises(SettingsError, match=r"RENKU_ENV_OPERATOR_CLUSTER_CIDRS.*not-a-range"):
        load_settings()
    monkeypatch.delenv("RENKU_ENV_OPERATOR_CLUSTER_CIDRS")
    monkeypatch.setenv("RENKU_ENV_OPERATOR_REGISTRY_INTERNAL_ALLOWLIST", "a.internal, 10.0.0.0/8")
    assert load_settings().registry_internal_allowlist == ["a.internal", "10.0.0.0/8"]
    assert Settings().registry_check_deadline_seconds == 60.0
