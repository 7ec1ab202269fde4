"""`posecluster serve`: the facility's web app (projects, labeling, refining, archive jobs) over one root."""

from __future__ import annotations

import socket

from posecluster.serve.app import create_app
from posecluster.serve.auth import new_token

__all__ = ["create_app", "new_token", "serve"]


def serve(root: str, host: str = "127.0.0.1", port: int = 0, token: str | None = None, announce=print) -> None:
    """Run the app with uvicorn until interrupted. Port 0 picks a free one; the URL with the token is
    announced once (the access log is off, so the token never reaches a log)."""
    import uvicorn

    token = token or new_token()
    app = create_app(root, token)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    announce(f"posecluster serve: {root}\n    http://{shown}:{bound}/?token={token}")
    server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_level="warning"))
    server.run(sockets=[sock])
