"""The access token, Jupyter style: required on every request (except the health probe), given as
`Authorization: Bearer <token>`, an `X-Posecluster-Token` header, or the cookie that opening the printed
`/?token=<token>` URL sets (the URL then redirects to itself without the token, so it leaves the
address bar and the history)."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse

COOKIE = "posecluster_token"
PUBLIC = ("/healthz",)


def new_token() -> str:
    return secrets.token_urlsafe(24)


class TokenAuth:
    """Pure ASGI middleware (no buffering of streamed responses)."""

    def __init__(self, app, token: str):
        if not token:
            raise ValueError("an access token is required")
        self.app, self.token = app, token

    def _valid(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in PUBLIC:
            return await self.app(scope, receive, send)
        request = Request(scope)
        query_token = request.query_params.get("token")
        if self._valid(query_token):
            rest = [(k, v) for k, v in parse_qsl(request.url.query, keep_blank_values=True) if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
            return await response(scope, receive, send)
        header = request.headers.get("authorization", "")
        given = (header[7:] if header.lower().startswith("bearer ") else None) \
            or request.headers.get("x-posecluster-token") or request.cookies.get(COOKIE)
        if not self._valid(given):
            response = JSONResponse({"error": "missing or wrong access token: open the URL that `posecluster "
                                              "serve` printed (it carries ?token=...)"}, status_code=401)
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)
