"""`posecluster serve`: the facility's web app (projects, labeling, refining, jobs) over one root.

The app's modules import the whole pipeline (torch among it); they load on first use, so that the command
line can refuse a bad --host before paying for that."""

from __future__ import annotations

import importlib
import signal
import socket
from dataclasses import replace

from posecluster.serve.access import ProxyAccess
from posecluster.serve.options import Listen, ServeOptions, exposure_warning, is_loopback

__all__ = ["Listen", "ProxyAccess", "ServeOptions", "create_app", "exposure_warning", "is_loopback", "new_token", "serve"]
_LAZY = {"create_app": "posecluster.serve.app", "new_token": "posecluster.serve.auth"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _exit_on_sigterm(signum, frame):
    # uvicorn shuts down gracefully on SIGTERM and then raises the signal again for the handler that was
    # there before: this one turns it into SystemExit, so that the private Ray head is stopped too.
    raise SystemExit(128 + signum)


def _print(text: str) -> None:
    print(text, flush=True)  # a pipe (a container log, a test) sees it now, not when a buffer fills


def serve(root: str, listen: Listen = Listen(), token: str | None = None, options=None, local_ray: bool = False,
          announce=_print) -> None:
    """Run the app with uvicorn until interrupted. Port 0 picks a free one. In token mode the URL with the
    token is announced once (the access log is off, so the token never reaches a log); behind a proxy
    (options.access) no token is made unless one is given. local_ray: start a private Ray head for the
    jobs the browser starts (a folder served on one machine)."""
    warning = exposure_warning(listen)  # before the app's imports: a refusal or a warning comes at once
    if warning:
        announce(warning)
    import uvicorn

    from posecluster.serve.app import create_app
    from posecluster.serve.auth import new_token

    options = options or ServeOptions()
    if options.access is None:
        token = token or new_token()
    head = None
    if local_ray and options.ray_address is None:
        from posecluster import api

        head = api.start_local_ray()
        options = replace(options, ray_address=head.address, ray_token=head.token)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
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
