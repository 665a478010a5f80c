"""Which addresses the operator may reach on a user's behalf: the rules, as pure functions.

A GlobalEnvironment names its image, so its registry (and whatever that registry redirects to
or names as its token service) is chosen by whoever may write the object. Left unchecked, that
is a request forgery channel into the cluster: the API server, cloud metadata endpoints, other
namespaces' services. So a registry target must resolve to public addresses only, unless an
admin allowlisted it (REGISTRY_INTERNAL_ALLOWLIST) as an internal mirror.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWLIST_SETTING = "RENKU_ENV_OPERATOR_REGISTRY_INTERNAL_ALLOWLIST"
ALLOWLIST_HELM = "registry.internalAllowlist"
CLUSTER_SETTING = "RENKU_ENV_OPERATOR_CLUSTER_CIDRS"
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
HINT = (
    f"registries, their redirects and token services must be public; an admin can allow an "
    f"internal mirror with {ALLOWLIST_SETTING} (Helm: {ALLOWLIST_HELM})"
)


class OutboundRuleError(ValueError):
    """An allowlist or CIDR entry that does not parse; the message names the entry."""


def parse_network(entry: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError as error:
        raise OutboundRuleError(f"{entry!r} is not a CIDR range like 10.96.0.0/12") from error


def split_host_port(entry: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]:port` -> (lower-case host, port or None)."""
    text = entry.strip().lower()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise OutboundRuleError(f"{entry!r} is not host, host:port or a CIDR range")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host or (port_text and not port_text.isdigit()):
        raise OutboundRuleError(f"{entry!r} is not host, host:port or a CIDR range")
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port < 65536:
        raise OutboundRuleError(f"{entry!r}: the port must be 1-65535")
    return host, port


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses only, except what the allowlist names; the cluster's ranges never."""

    hosts: frozenset[str] = frozenset()
    """Allowlisted host names (any port), lower case."""
    host_ports: frozenset[tuple[str, int]] = frozenset()
    """Allowlisted host:port pairs."""
    networks: tuple[IPNetwork, ...] = ()
    """Allowlisted ranges: any resolved address inside passes."""
    cluster: tuple[IPNetwork, ...] = ()
    """The cluster's service and pod ranges (CLUSTER_CIDRS), refused like private ranges."""

    @classmethod
    def of(cls, allowlist: Iterable[str] = (), cluster_cidrs: Iterable[str] = ()) -> AddressPolicy:
        hosts: set[str] = set()
        host_ports: set[tuple[str, int]] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in allowlist if e.strip()):
            if "/" in entry or _is_ip(entry):
                networks.append(parse_network(entry))
                continue
            host, port = split_host_port(entry)
            if port is None:
                hosts.add(host)
            else:
                host_ports.add((host, port))
        cluster = tuple(parse_network(c) for c in cluster_cidrs if c.strip())
        return cls(frozenset(hosts), frozenset(host_ports), tuple(networks), cluster)

    def allows_name(self, host: str, port: int) -> bool:
        """Whether the allowlist names this host (or host:port) itself."""
        name = host.lower().strip("[]")
        return name in self.hosts or (name, port) in self.host_ports

    def refusal(self, host: str, port: int, addresses: Sequence[str]) -> str | None:
        """Why `host` (resolved to `addresses`) may not be reached; None when it may.

        Every resolved address must pass: a name with one public and one internal address is
        refused, so the connection cannot be steered to the internal one.
        """
        if self.allows_name(host, port):
            return None
        if not addresses:
            return f"{host} resolves to no address"
        for text in addresses:
            address = _address(text)
            if any(address in network for network in self.networks):
                continue
            why = self._why_internal(address)
            if why is not None:
                shown = host if host.strip("[]") == text else f"{host} (resolves to {text})"
                return f"{shown} is {why}: refused, {HINT}"
        return None

    def _why_internal(self, address: IPAddress) -> str | None:
        for network in self.cluster:
            if address in network:
                return f"inside the cluster's range {network} ({CLUSTER_SETTING})"
        return internal_kind(address)


def internal_kind(address: IPAddress) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None
        )
        if embedded is not None:
            return internal_kind(embedded)
        if address in _UNIQUE_LOCAL:
            return "a unique-local address"
    checks = (
        ("is_unspecified", "an unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address (cloud metadata lives there)"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    )
    for attribute, kind in checks:
        if getattr(address, attribute):
            return kind
    if not address.is_global:  # 100.64.0.0/10 (CGNAT) and friends
        return "a shared or reserved address (not globally routable)"
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0].strip("[]"))  # no IPv6 zone index
