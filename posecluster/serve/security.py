"""What every response and request goes through before any route: browser hardening headers, the Host
check (DNS rebinding), cross-site request refusal (Fetch Metadata and Origin), and a bound on bodies.

The page itself builds its DOM from data with textContent (never markup from stored values); the
Content-Security-Policy below is the second wall: no inline script, no script from anywhere but this
server, no framing."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
MAX_BODY_BYTES = 8 << 20  # a folder's labels are kilobytes; a job request is a few hundred bytes
# What a cross-site page may still do: open the app (a link, a bookmark) and probe its health.
NAVIGABLE = ("/", "/healthz")


@dataclass(frozen=True)
class HostPolicy:
    """Host names the app answers to: loopback, the name it was bound to, and whatever the facility
    serves it as (the Ingress host). '*' turns the check off (only behind a proxy that checks Host)."""

    allowed: tuple[str, ...] = field(default_factory=tuple)

    def allows(self, host_header: str) -> bool:
        if "*" in self.allowed:
            return True
        host = _host_name(host_header)
        return bool(host) and (host in LOOPBACK_NAMES or host in {h.lower() for h in self.allowed})


def _host_name(value: str) -> str:
    """'Example.org:8080' -> 'example.org'; '[::1]:80' -> '::1'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def cross_site_refusal(method: str, path: str, headers: Headers) -> str | None:
    """Why a request from another site (or another port of this host) is refused, or None."""
    site = headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site") and path not in NAVIGABLE:
        return "cross-site requests are refused"
    if method in WRITES:
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if origin == "null" or (parts.netloc or "").lower() != headers.get("host", "").lower():
                return "a write from another origin is refused"
        elif site not in (None, "same-origin", "none"):
            return "a write without an Origin from a browser is refused"
    return None


class Guard:
    """Pure ASGI middleware (no buffering of streamed responses)."""

    def __init__(self, app, hosts: HostPolicy, hsts: bool = False):
        self.app, self.hosts = app, hosts
        self.headers = HEADERS + ([(b"strict-transport-security", b"max-age=31536000")] if hsts else [])

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)

        async def send_hardened(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                if b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        problem = None
        # The health probe answers any Host: the kubelet calls it by the pod's IP, and it holds no data.
        if scope["path"] != "/healthz" and not self.hosts.allows(headers.get("host", "")):
            problem = _refuse(400, "unknown Host header: open the app by the name the facility gave it "
                                   "(add it with --allowed-host)")
        elif (reason := cross_site_refusal(scope["method"], scope["path"], headers)) is not None:
            problem = _refuse(403, reason)
        else:
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                problem = _refuse(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        if problem is not None:
            return await problem(scope, receive, send_hardened)
        return await self.app(scope, receive, send_hardened)


async def read_body(request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, read chunk by chunk and abandoned past `limit` (a chunked upload without a
    Content-Length is never held whole)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class BodyTooLarge(ValueError):
    pass
