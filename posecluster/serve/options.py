"""How the web app is reached: where it listens (plain HTTP beyond loopback is refused unless TLS is here
or in front) and what it trusts and may start. Light on imports: the command line checks a bad --host
before loading the app (which imports the whole pipeline)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from posecluster.serve.access import ProxyAccess


@dataclass(frozen=True)
class Listen:
    """Where the server listens. Beyond loopback, plain HTTP carries the token (or the proxy's headers)
    in the clear: it needs TLS here (certfile/keyfile) or in front (an Ingress, oauth2-proxy), which
    allow_remote acknowledges."""

    host: str = "127.0.0.1"
    port: int = 0
    certfile: str | None = None
    keyfile: str | None = None
    allow_remote: bool = False

    @property
    def tls(self) -> bool:
        return bool(self.certfile)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(listen: Listen) -> str | None:
    """None on loopback or with TLS; a warning with --allow-remote; otherwise a refusal (ValueError)."""
    if is_loopback(listen.host) or listen.tls:
        return None
    if not listen.allow_remote:
        raise ValueError(f"--host {listen.host} would serve plain HTTP beyond this machine: the token and every "
                         "label would cross the network in the clear. Give --tls-certfile/--tls-keyfile, or put TLS "
                         "in front (an Ingress with TLS, oauth2-proxy) and pass --allow-remote")
    return (f"WARNING: serving plain HTTP on {listen.host}; only safe when TLS terminates in front of this server "
            "(an Ingress with TLS, oauth2-proxy) and nothing else can reach this port")


@dataclass(frozen=True)
class ServeOptions:
    """How the app is reached and what it may start.

    access: the facility's proxy access file (None: the token alone).
    allowed_hosts: Host names besides loopback the app answers to (the Ingress host; '*': any).
    secure_cookies: TLS terminates in front of the app: the token cookie only over HTTPS, HSTS, and https
      as the scheme a write's Origin must carry.
    ray_address: the Ray dashboard (http://head:8265) whose Job Submission API runs the browser's work;
      None: the app starts nothing. ray_token: Ray's auth token for it (never shown or logged).
    """

    access: ProxyAccess | None = None
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)
    secure_cookies: bool = False
    ray_address: str | None = None
    ray_token: str | None = field(default=None, repr=False)
