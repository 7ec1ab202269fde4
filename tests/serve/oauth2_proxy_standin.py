"""A stand-in for oauth2-proxy in front of the app, run as its own process: the header contract the facility
depends on, as oauth2-proxy's source keeps it (ENVIRONMENT.md), without an identity provider.

- A request without a known session cookie (`_oauth2_proxy=<name>`) is refused (oauth2-proxy would send
  the browser to sign in); with `--allowed-group`, a session in none of them is refused (403).
- `--pass-user-headers`: every client line of X-Forwarded-User/-Email/-Groups/-Preferred-Username is
  removed, then the session's values are set once each: groups comma-joined in one line, the e-mail and
  groups lines only when the session has them (an account in no group gets no groups header at all).
- Every other header the client sent is forwarded as it came, duplicates and X-Auth-Request-* included.

Usage: python oauth2_proxy_standin.py --upstream http://127.0.0.1:PORT --sessions sessions.json
       [--allowed-group G]...   (prints "ready http://127.0.0.1:PORT" once it listens)
sessions.json: {"<cookie value>": {"user": "...", "email": "...", "groups": ["..."]}}
"""

from __future__ import annotations

import argparse
import http.client
import json
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

COOKIE = "_oauth2_proxy"
INJECTED = ("x-forwarded-user", "x-forwarded-email", "x-forwarded-groups", "x-forwarded-preferred-username")
HOP_BY_HOP = ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "content-length")


def make_handler(upstream: str, sessions: dict, allowed_groups: set[str]):
    target = urlsplit(upstream)

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the test reads only responses
            pass

        def _session(self) -> dict | None:
            cookies = SimpleCookie()
            for line in self.headers.get_all("cookie") or []:
                cookies.load(line)
            name = cookies[COOKIE].value if COOKIE in cookies else None
            return sessions.get(name)

        def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]] = ()) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            session = self._session()
            if session is None:
                return self._answer(401, b"sign in first")
            groups = [g for g in session.get("groups", []) if g]
            if allowed_groups and not allowed_groups & set(groups):
                return self._answer(403, b"not in an allowed group")
            lines = [(k, v) for k, v in self.headers.items() if k.lower() not in INJECTED + HOP_BY_HOP]
            lines.append(("X-Forwarded-User", session["user"]))
            if session.get("email"):
                lines.append(("X-Forwarded-Email", session["email"]))
            if groups:
                lines.append(("X-Forwarded-Groups", ",".join(groups)))
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in lines:  # one putheader per line: duplicates stay duplicates
                    connection.putheader(name, value)
                connection.putheader("Content-Length", str(len(body)))
                connection.endheaders(body)
                response = connection.getresponse()
                data = response.read()
                headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            finally:
                connection.close()
            self._answer(response.status, data, headers)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

    return Proxy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--sessions", required=True)
    parser.add_argument("--allowed-group", action="append", default=[])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with open(args.sessions) as handle:
        sessions = json.load(handle)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.upstream, sessions, set(args.allowed_group)))
    print(f"ready http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
