"""The ASGI app: hardening (security.py), authentication and scoping (auth.py), JSON routes over
posecluster.api, the static front end. Errors reach the browser as 4xx with messages whose storage
locations are made relative to the root or hidden; the server log keeps the full text."""

from __future__ import annotations

import logging
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from posecluster import api
from posecluster.errors import InputError
from posecluster.labeling.folder_table import TableConflict
from posecluster.serve.auth import Authenticate
from posecluster.serve.jobs import JobRoutes
from posecluster.serve.labels import BadBody
from posecluster.serve.launch import ClusterUnavailable, LaunchRoutes
from posecluster.serve.paths import PathRefused, Scope, hide_locations, normalise_root
from posecluster.serve.projects import ProjectRoutes
from posecluster.serve.options import ServeOptions
from posecluster.serve.security import BodyTooLarge, Guard, HostPolicy
from posecluster.serve.tracks import TrackRoutes

log = logging.getLogger(__name__)
STATIC = __file__.rsplit("/", 1)[0] + "/static"


def _message(request: Request, exc: Exception, root: str) -> str:
    text = str(exc) or type(exc).__name__
    scope: Scope | None = getattr(request.state, "scope", None)
    if scope is None:
        text = text.replace(root.rstrip("/") + "/", "")
        return hide_locations(text)
    return scope.redact(text)


def _error(status: int, root: str):
    async def handler(request: Request, exc: Exception):
        if status == 500:
            # The browser gets no library internals; the log has the (storage-redacted) message.
            log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
            return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server log"},
                                status_code=status)
        (log.warning if status >= 500 else log.info)("%s %s: %d %s", request.method, request.url.path, status, exc)
        return JSONResponse({"error": _message(request, exc, root)}, status_code=status)

    return handler


def create_app(root: str, token: str | None = None, options: ServeOptions | None = None) -> Starlette:
    """The web app over `root` (a local folder or an s3:// prefix): every request needs `token`, or comes
    through the proxy that `options.access` trusts."""
    options = options or ServeOptions()
    root = normalise_root(root)
    jobs = api.job_submission(options.ray_address, options.ray_token) if options.ray_address else None

    async def index(request: Request):
        return FileResponse(f"{STATIC}/index.html", headers={"Cache-Control": "no-cache"})

    async def health(request: Request):
        return PlainTextResponse("ok")

    async def me(request: Request):
        caller = request.state.caller
        return JSONResponse({"user": caller.name, "prefixes": list(caller.prefixes), "whole_root": caller.whole_root,
                             "root": root if caller.whole_root else "", "jobs": jobs is not None})

    archive_jobs = JobRoutes(root)
    launches = LaunchRoutes(root, jobs, on_submit=archive_jobs.answers.invalidate)
    routes = [Route("/", index), Route("/healthz", health), Route("/api/me", me),
              *ProjectRoutes(root).routes(), *TrackRoutes(root).routes(), *archive_jobs.routes(),
              *launches.routes(),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    handlers = {
        PathRefused: _error(400, root), BadBody: _error(400, root), BodyTooLarge: _error(413, root),
        TableConflict: _error(409, root), InputError: _error(422, root), ValueError: _error(400, root),
        FileNotFoundError: _error(404, root), ClusterUnavailable: _error(503, root), OSError: _error(502, root),
        Exception: _error(500, root),
    }
    middleware = [
        Middleware(Guard, hosts=HostPolicy(options.allowed_hosts), hsts=options.secure_cookies,
                   scheme="https" if options.secure_cookies else None),  # TLS ends in front: browsers use https
        Middleware(Authenticate, root=root, token=token, access=options.access, secure_cookies=options.secure_cookies),
    ]
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
