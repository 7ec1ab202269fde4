"""Who may see what: the facility's access file (trusted proxy addresses, groups and users mapped to
storage prefixes under the root) and the caller a request was authenticated as.

Two ways in (auth.py): the printed token opens the whole root to one person; behind an authenticating
proxy (oauth2-proxy, an OIDC ingress) the proxy's user and group headers, trusted only from the proxy's
addresses, open the prefixes the access file maps them to. The file is YAML:

    trusted_proxies: [127.0.0.1/32]     # addresses the proxy connects from (a sidecar: loopback)
    groups:                             # the groups header's names -> prefixes
      smith-lab: [smith]
      jones-lab: [jones, shared/videos]
      facility-staff: ["*"]             # the whole root
    users:                              # optional: a user or e-mail -> prefixes
      alice@uni.example: [smith]
    headers:                            # optional: the header names this deployment's proxy sets
      user: X-Forwarded-User            # (these are oauth2-proxy's with --pass-user-headers)
      email: X-Forwarded-Email
      groups: X-Forwarded-Groups

Identity is read from exactly those three names and no other family: a proxy overwrites only the headers
it sets itself and forwards whatever else a client sent (oauth2-proxy sends no groups header at all for an
account in no group), so any fallback name is one a client can fill in. A name that arrives twice is
refused: two lines mean something between the client and the app appended instead of replacing.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import yaml

from posecluster import storage

WHOLE_ROOT = ""
MAX_HEADER_CHARS = 8192
HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


class IdentityRefused(ValueError):
    """The proxy's identity headers cannot be believed (duplicated, oversized) or name nobody."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class IdentityHeaders:
    """The header names the deployment's proxy sets (default: oauth2-proxy's --pass-user-headers)."""

    user: str = "X-Forwarded-User"
    email: str = "X-Forwarded-Email"
    groups: str = "X-Forwarded-Groups"

    @classmethod
    def from_mapping(cls, raw, source: str) -> "IdentityHeaders":
        if raw is None:
            return cls()
        if not isinstance(raw, dict) or set(raw) - {"user", "email", "groups"}:
            raise ValueError(f"{source}: `headers` maps user, email and groups to header names")
        names = {**cls().__dict__, **raw}
        for role, name in names.items():
            if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
                raise ValueError(f"{source}: headers.{role}: {name!r} is not a header name")
        if len({n.lower() for n in names.values()}) != 3:
            raise ValueError(f"{source}: headers: user, email and groups need three different names")
        return cls(**names)


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
    headers: IdentityHeaders = field(default_factory=IdentityHeaders)

    @classmethod
    def from_mapping(cls, raw: dict, source: str) -> "ProxyAccess":
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: expected a YAML mapping with trusted_proxies and groups")
        unknown = set(raw) - {"trusted_proxies", "groups", "users", "headers"}
        if unknown:
            raise ValueError(f"{source}: unknown keys {sorted(unknown)} (expected trusted_proxies, groups, users, "
                             "headers)")
        proxies = raw.get("trusted_proxies")
        if not isinstance(proxies, list) or not proxies:
            raise ValueError(f"{source}: trusted_proxies must list the addresses the authenticating proxy "
                             "connects from (e.g. [127.0.0.1/32] for a sidecar)")
        try:
            networks = tuple(ipaddress.ip_network(str(p), strict=False) for p in proxies)
        except ValueError as exc:
            raise ValueError(f"{source}: trusted_proxies: {exc}") from None
        access = cls(networks, _prefix_map(raw.get("groups"), source, "groups"),
                     _prefix_map(raw.get("users"), source, "users"), IdentityHeaders.from_mapping(raw.get("headers"), source))
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

    def _single(self, headers, name: str) -> str:
        """The one value of header `name` ("" when absent); IdentityRefused when it came twice or is oversized."""
        values = headers.getlist(name)
        if len(values) > 1:
            raise IdentityRefused(400, f"the request carries {name} {len(values)} times; a sign-in proxy sets it "
                                       "once (configure it to replace, not append, what a client sends)")
        value = values[0].strip() if values else ""
        if len(value) > MAX_HEADER_CHARS:
            raise IdentityRefused(400, f"{name} is longer than {MAX_HEADER_CHARS} characters")
        return value

    def caller(self, headers) -> Caller:
        """The caller the proxy's headers name (starlette Headers: every line of a name is seen). Call only
        for a trusted peer. IdentityRefused when they name nobody or cannot be believed; a caller with no
        prefixes (an account in no mapped group) is returned for the route to refuse."""
        names = self.headers
        user, email, group_line = (self._single(headers, n) for n in (names.user, names.email, names.groups))
        if not (user or email):
            raise IdentityRefused(401, f"the sign-in proxy sent no user ({names.user} / {names.email})")
        groups = [g.strip() for g in group_line.split(",") if g.strip()]
        prefixes: list[str] = []
        for name in dict.fromkeys(filter(None, (user, email))):
            prefixes += self.users.get(name, ())
        for group in groups:
            prefixes += self.groups.get(group, ())
        unique = tuple(dict.fromkeys(prefixes))
        return Caller(email or user, (WHOLE_ROOT,) if WHOLE_ROOT in unique else unique)
