"""Who is calling: every request (except the health probe) is authenticated here and carries its Caller
(access.py) in `request.state.caller` for the routes to scope what they read and write.

- The token, Jupyter style (one person, the whole root): `Authorization: Bearer <token>`, an
  `X-Posecluster-Token` header, or the cookie that opening the printed `/?token=<token>` URL sets (the
  URL then redirects to `/` without the token, so it leaves the address bar and the history).
- The facility's authenticating proxy (oauth2-proxy, an OIDC ingress): its user, e-mail and group headers
  (the names the access file configures, no other family), believed only from the proxy's configured
  addresses; from anywhere else they are ignored. A duplicated identity header is refused.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse

from posecluster.serve.access import TOKEN_CALLER, Caller, IdentityRefused, ProxyAccess
from posecluster.serve.paths import Scope

COOKIE = "posecluster_token"
PUBLIC = ("/healthz",)


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Authenticate:
    """Pure ASGI middleware (no buffering of streamed responses). `token`, `access` or both; the caller's
    Scope over `root` goes to the routes as request.state.scope."""

    def __init__(self, app, root: str, token: str | None = None, access: ProxyAccess | None = None,
                 secure_cookies: bool = False):
        if not token and access is None:
            raise ValueError("an access token or a proxy access file is required")
        self.app, self.root, self.token, self.access, self.secure_cookies = app, root, token, access, secure_cookies
        self.local = Scope(root, TOKEN_CALLER).local

    def _admit(self, scope, caller: Caller):
        state = scope.setdefault("state", {})
        state["caller"], state["scope"] = caller, Scope(self.root, caller, self.local)

    def _valid(self, given: str | None) -> bool:
        return bool(self.token) and bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in PUBLIC:
            return await self.app(scope, receive, send)
        request = Request(scope)
        peer = (scope.get("client") or ("", 0))[0]
        if self.access is not None and self.access.trusts(peer):
            try:
                caller = self.access.caller(request.headers)
            except IdentityRefused as refused:
                return await _deny(refused.status, str(refused), scope, receive, send)
            if not caller.prefixes:
                return await _deny(403, f"your account ({caller.name}) is in no group that this facility has given "
                                        "a storage folder; ask the facility to add your group", scope, receive, send)
            self._admit(scope, caller)
            return await self.app(scope, receive, send)
        if self.token and self._valid(request.query_params.get("token")):
            # Always to "/" itself: a path from the URL (//evil.example/, /\evil.example) could lead off-site.
            response = RedirectResponse("/", status_code=303)
            secure = self.secure_cookies or request.url.scheme == "https"
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", secure=secure, path="/")
            return await response(scope, receive, send)
        header = request.headers.get("authorization", "")
        given = (header[7:] if header.lower().startswith("bearer ") else None) \
            or request.headers.get("x-posecluster-token") or request.cookies.get(COOKIE)
        if not self._valid(given):
            message = ("missing or wrong access token: open the URL that `posecluster serve` printed (it carries "
                       "?token=...)") if self.token else "sign in through the facility's proxy"
            return await _deny(401, message, scope, receive, send)
        self._admit(scope, TOKEN_CALLER)
        return await self.app(scope, receive, send)


async def _deny(status: int, message: str, scope, receive, send):
    await JSONResponse({"error": message}, status_code=status)(scope, receive, send)
