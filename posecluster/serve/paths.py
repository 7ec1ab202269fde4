"""Every path from the browser is relative to the served root and resolved here, before anything is read.

Refused: absolute paths, URIs (another bucket or scheme), `..` or `.` segments, empty segments,
backslashes, control characters and percent signs (a second round of URL decoding must never be able to
change what a path means).
"""

from __future__ import annotations

from posecluster import storage


class PathRefused(ValueError):
    """A path from the browser that does not stay under the root."""


def normalise_root(root: str) -> str:
    """The root as the storage layer lists it back (local folders as absolute paths), without a trailing /."""
    local = storage.local_path(root)
    return (local if local is not None else root).rstrip("/") or "/"


def resolve(root: str, relative: str | None) -> str:
    """`relative` (from the browser) -> a URI under `root`, or PathRefused."""
    if relative is None or relative == "":
        raise PathRefused("a path relative to the served root is required")
    if "://" in relative or relative.startswith(("/", "~")) or ":" in relative.split("/", 1)[0]:
        raise PathRefused(f"{relative!r}: only paths relative to the served root are allowed")
    if any(ch in relative for ch in "\\%") or any(ord(ch) < 32 for ch in relative):
        raise PathRefused(f"{relative!r}: backslashes, percent signs and control characters are not allowed")
    parts = relative.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise PathRefused(f"{relative!r}: '.', '..' and empty segments are not allowed")
    uri = storage.join(root, *parts)
    # A symbolic link inside a local root must not lead the server outside it.
    real_root, real = storage.resolved_local_path(root), storage.resolved_local_path(uri)
    if real is not None and real_root is not None and real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
        raise PathRefused(f"{relative!r}: leads outside the served root (a symbolic link)")
    return uri


def require_under(root: str, uri: str, what: str) -> str:
    """A URI read from a file under the root (e.g. the video a `_meta.json` names): served only when it
    lies under the root too, so a stored file cannot make the server read elsewhere with its credentials."""
    relative = relative_to(root, uri or "")
    if relative is None:
        raise PathRefused(f"{what} {uri!r} lies outside the served root; it is not read")
    return resolve(root, relative)


def relative_to(root: str, uri: str) -> str | None:
    """The path of `uri` under `root` (what the browser may ask for), or None when it lies elsewhere."""
    prefix = root.rstrip("/") + "/"
    return uri[len(prefix):] if uri.startswith(prefix) else None
