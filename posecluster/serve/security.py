"""What every response and request goes through before any route: browser hardening headers, the Host
check (DNS rebinding), cross-site request refusal (Fetch Metadata and Origin), and a bound on bodies.

The page itself builds its DOM from data with textContent (never markup from stored values); the
Content-Security-Policy below is the second wall: no inline script, no script from anywhere but this
server, no framing."""

from __future__ import annotations

import re
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


# host[:port] and nothing else: a name (or IPv4), or an IPv6 address in brackets; the port all digits.
HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?))(?::(?P<port>[0-9]{1,5}))?")
DEFAULT_PORTS = {"http": "80", "https": "443"}


@dataclass(frozen=True)
class HostPolicy:
    """Host names the app answers to: loopback, the name it was bound to, and whatever the facility
    serves it as (the Ingress host). '*' turns the check off (only behind a proxy that checks Host)."""

    allowed: tuple[str, ...] = field(default_factory=tuple)

    def allows(self, host_header: str) -> bool:
        if "*" in self.allowed:
            return True
        parsed = parse_host(host_header)
        return parsed is not None and (parsed[0] in LOOPBACK_NAMES or parsed[0] in {h.lower() for h in self.allowed})


def parse_host(value: str) -> tuple[str, str | None] | None:
    """'Example.org:8080' -> ('example.org', '8080'); '[::1]' -> ('::1', None); None for anything else
    (a list such as '127.0.0.1:8766, evil.example', spaces, userinfo, an empty or non-numeric port)."""
    match = HOST.fullmatch(value.lower())
    if match is None:
        return None
    return match.group("v6") or match.group("name"), match.group("port")


def _origin_of(scheme: str, host_header: str) -> tuple[str, str, str] | None:
    """(scheme, host, port) with the scheme's default port filled in."""
    parsed = parse_host(host_header)
    if parsed is None or scheme not in DEFAULT_PORTS:
        return None
    return scheme, parsed[0], parsed[1] or DEFAULT_PORTS[scheme]


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def cross_site_refusal(method: str, path: str, headers: Headers, scheme: str = "http") -> str | None:
    """Why a request from another site (or another port or scheme of this host) is refused, or None.
    `scheme`: what the browser uses to reach the app (https when TLS ends in front of it)."""
    site = headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site") and path not in NAVIGABLE:
        return "cross-site requests are refused"
    if method in WRITES:
        origins = headers.getlist("origin")
        if origins:
            try:
                parts = urlsplit(origins[0])
            except ValueError:  # "http://[::1" and the like
                parts = None
            given = None if parts is None or len(origins) > 1 or parts.path or parts.query or parts.fragment \
                else _origin_of(parts.scheme, parts.netloc)
            if given is None or given != _origin_of(scheme, headers.get("host", "")):
                return ("a write from another origin (scheme, host and port) is refused; where TLS ends in front "
                        "of the app, start it with --secure-cookies so that https is its scheme")
        elif site not in (None, "same-origin", "none"):
            return "a write without an Origin from a browser is refused"
    return None


class Guard:
    """Pure ASGI middleware (no buffering of streamed responses)."""

    def __init__(self, app, hosts: HostPolicy, hsts: bool = False, scheme: str | None = None):
        """`scheme`: the scheme browsers use to reach the app when TLS ends in front of it ("https");
        None: the scheme of the connection the app receives."""
        self.app, self.hosts, self.scheme = app, hosts, scheme
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
        hosts = headers.getlist("host")
        if scope["path"] != "/healthz" and (len(hosts) != 1 or not self.hosts.allows(hosts[0])):
            problem = _refuse(400, "unknown Host header: open the app by the name the facility gave it "
                                   "(add it with --allowed-host)")
        elif (reason := cross_site_refusal(scope["method"], scope["path"], headers,
                                           self.scheme or scope.get("scheme", "http"))) is not None:
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
