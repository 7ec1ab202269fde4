"""Who may see what: the facility's access file (trusted proxy addresses, groups and users mapped to
storage prefixes under the root) and the caller a request was authenticated as.

Two ways in (auth.py): the printed token opens the whole root to one person; behind an authenticating
proxy (oauth2-proxy, an OIDC ingress) the proxy's user and group headers, trusted only from the proxy's
addresses, open the prefixes the access file maps them to. The file is YAML:

    trusted_proxies: [127.0.0.1/32]     # addresses the proxy connects from (a sidecar: loopback)
    groups:                             # X-Forwarded-Groups / X-Auth-Request-Groups -> prefixes
      smith-lab: [smith]
      jones-lab: [jones, shared/videos]
      facility-staff: ["*"]             # the whole root
    users:                              # optional: a user or e-mail -> prefixes
      alice@uni.example: [smith]
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import yaml

from posecluster import storage

WHOLE_ROOT = ""
# The headers oauth2-proxy sets (--pass-user-headers / --set-xauthrequest); the first one present wins.
USER_HEADERS = ("x-forwarded-user", "x-auth-request-user", "x-forwarded-preferred-username",
                "x-auth-request-preferred-username")
EMAIL_HEADERS = ("x-forwarded-email", "x-auth-request-email")
GROUP_HEADERS = ("x-forwarded-groups", "x-auth-request-groups")
MAX_HEADER_CHARS = 8192


@dataclass(frozen=True)
class Caller:
    """A request's identity: a name to show and the prefixes (relative to the root) it may read and write."""

    name: str
    prefixes: tuple[str, ...]

    @property
    def whole_root(self) -> bool:
        return WHOLE_ROOT in self.prefixes


TOKEN_CALLER = Caller("token", (WHOLE_ROOT,))


def normalise_prefix(prefix: str, source: str) -> str:
    """'smith/' -> 'smith'; '*' or '' -> the whole root; anything that could leave the root is refused."""
    text = str(prefix).strip().strip("/")
    if text in ("*", ""):
        return WHOLE_ROOT
    parts = text.split("/")
    if any(part in ("", ".", "..") or "\\" in part or "://" in part or any(ord(c) < 32 for c in part)
           for part in parts):
        raise ValueError(f"{source}: prefix {prefix!r} must be a path relative to the served root")
    return "/".join(parts)


def _prefix_map(raw, source: str, what: str) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: `{what}` must map names to lists of prefixes")
    out = {}
    for name, prefixes in raw.items():
        if isinstance(prefixes, str):
            prefixes = [prefixes]
        if not isinstance(prefixes, list) or not prefixes:
            raise ValueError(f"{source}: {what}.{name} must be a non-empty list of prefixes")
        out[str(name)] = tuple(dict.fromkeys(normalise_prefix(p, f"{source}: {what}.{name}") for p in prefixes))
    return out


@dataclass(frozen=True)
class ProxyAccess:
    """The facility mode: trusted proxy networks and who may see which prefixes."""

    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    users: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, raw: dict, source: str) -> "ProxyAccess":
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: expected a YAML mapping with trusted_proxies and groups")
        unknown = set(raw) - {"trusted_proxies", "groups", "users"}
        if unknown:
            raise ValueError(f"{source}: unknown keys {sorted(unknown)} (expected trusted_proxies, groups, users)")
        proxies = raw.get("trusted_proxies")
        if not isinstance(proxies, list) or not proxies:
            raise ValueError(f"{source}: trusted_proxies must list the addresses the authenticating proxy "
                             "connects from (e.g. [127.0.0.1/32] for a sidecar)")
        try:
            networks = tuple(ipaddress.ip_network(str(p), strict=False) for p in proxies)
        except ValueError as exc:
            raise ValueError(f"{source}: trusted_proxies: {exc}") from None
        access = cls(networks, _prefix_map(raw.get("groups"), source, "groups"),
                     _prefix_map(raw.get("users"), source, "users"))
        if not access.groups and not access.users:
            raise ValueError(f"{source}: map at least one group (or user) to a prefix")
        return access

    @classmethod
    def load(cls, uri: str) -> "ProxyAccess":
        try:
            raw = yaml.safe_load(storage.read_bytes(uri))
        except yaml.YAMLError as exc:
            raise ValueError(f"{uri}: not valid YAML: {exc}") from None
        return cls.from_mapping(raw, uri)

    def trusts(self, address: str | None) -> bool:
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)

    def caller(self, headers) -> Caller | None:
        """The caller the proxy's headers name (None when it named nobody). Call only for a trusted peer."""
        def first(names):
            for name in names:
                value = headers.get(name, "").strip()
                if value:
                    return value[:MAX_HEADER_CHARS]
            return ""

        user, email = first(USER_HEADERS), first(EMAIL_HEADERS)
        if not (user or email):
            return None
        groups = [g.strip() for g in first(GROUP_HEADERS).split(",") if g.strip()]
        prefixes: list[str] = []
        for name in (user, email):
            prefixes += self.users.get(name, ())
        for group in groups:
            prefixes += self.groups.get(group, ())
        unique = tuple(dict.fromkeys(prefixes))
        return Caller(email or user, (WHOLE_ROOT,) if WHOLE_ROOT in unique else unique)
