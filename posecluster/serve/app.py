"""The ASGI app: token check, JSON routes over posecluster.api, the static front end."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from posecluster.errors import InputError
from posecluster.labeling.folder_table import TableConflict
from posecluster.serve.auth import TokenAuth
from posecluster.serve.jobs import JobRoutes
from posecluster.serve.paths import PathRefused, normalise_root
from posecluster.serve.projects import ProjectRoutes

log = logging.getLogger(__name__)
STATIC = __file__.rsplit("/", 1)[0] + "/static"


def _error(status: int):
    async def handler(request: Request, exc: Exception):
        if status >= 500:
            # The browser gets no library internals; the log has the (storage-redacted) message.
            log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
            return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server log"},
                                status_code=status)
        return JSONResponse({"error": str(exc) or type(exc).__name__}, status_code=status)

    return handler


async def _conflict(request: Request, exc: TableConflict):
    return JSONResponse({"error": str(exc), "current_version": exc.current}, status_code=409)


def create_app(root: str, token: str) -> Starlette:
    """The web app over `root` (a local folder or an s3:// prefix); every request needs `token`."""
    root = normalise_root(root)

    async def index(request: Request):
        return FileResponse(f"{STATIC}/index.html", headers={"Cache-Control": "no-cache"})

    async def health(request: Request):
        return PlainTextResponse("ok")

    routes = [Route("/", index), Route("/healthz", health), *ProjectRoutes(root).routes(), *JobRoutes(root).routes(),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    handlers = {
        PathRefused: _error(400), TableConflict: _conflict, InputError: _error(422), ValueError: _error(400),
        FileNotFoundError: _error(404), OSError: _error(502), Exception: _error(500),
    }
    return Starlette(routes=routes, middleware=[Middleware(TokenAuth, token=token)], exception_handlers=handlers)
