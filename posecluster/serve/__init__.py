"""`posecluster serve`: the facility's web app (projects, labeling, refining, jobs) over one root."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, replace

from posecluster.serve.access import ProxyAccess
from posecluster.serve.app import ServeOptions, create_app
from posecluster.serve.auth import new_token

__all__ = ["Listen", "ProxyAccess", "ServeOptions", "create_app", "exposure_warning", "new_token", "serve"]


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


def serve(root: str, listen: Listen = Listen(), token: str | None = None, options: ServeOptions = ServeOptions(),
          local_ray: bool = False, announce=print) -> None:
    """Run the app with uvicorn until interrupted. Port 0 picks a free one. In token mode the URL with the
    token is announced once (the access log is off, so the token never reaches a log); behind a proxy
    (options.access) no token is made unless one is given. local_ray: start a private Ray head for the
    jobs the browser starts (a folder served on one machine)."""
    import uvicorn

    warning = exposure_warning(listen)
    if options.access is None:
        token = token or new_token()
    head = None
    if local_ray and options.jobs is None:
        from posecluster import api

        head = api.start_local_ray()
        options = replace(options, jobs=head.jobs())
    if listen.host not in ("0.0.0.0", "::", "") and listen.host not in options.allowed_hosts:
        options = replace(options, allowed_hosts=(*options.allowed_hosts, listen.host))
    try:
        app = create_app(root, token, options)
        family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listen.host, listen.port))
        bound = sock.getsockname()[1]
        shown = f"[{listen.host}]" if family == socket.AF_INET6 else listen.host
        scheme = "https" if listen.tls else "http"
        lines = [f"posecluster serve: {root}"]
        if warning:
            lines.append(warning)
        if options.access is not None:
            networks = ", ".join(str(n) for n in options.access.trusted_proxies)
            lines.append(f"    {scheme}://{shown}:{bound}/ behind the sign-in proxy (trusted from {networks})")
        if token:
            lines.append(f"    {scheme}://{shown}:{bound}/?token={token}")
        if head is not None:
            lines.append(f"    jobs run on a private Ray head ({head.address}, dashboard on this machine only)")
        announce("\n".join(lines))
        config = uvicorn.Config(app, access_log=False, log_level="warning", proxy_headers=False, server_header=False,
                                ssl_certfile=listen.certfile, ssl_keyfile=listen.keyfile)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if head is not None:
            head.stop()
