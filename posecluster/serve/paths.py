"""Every location the app touches is resolved here, once, before anything is read or written.

A path from the browser is relative to the served root. Refused: absolute paths, URIs (another bucket or
scheme), `..` or `.` segments, empty segments, backslashes, control characters and percent signs (a
second round of URL decoding must never be able to change what a path means).

Every location, whether it came from the browser, a listing or a file under the root (the video a
`_meta.json` names), is then confined: on a local root it is resolved with every symbolic link followed
and the result must lie under the root; on an object store its key must be normal (no `.`, `..` or empty
segments). It must also lie under one of the caller's prefixes (a lab sees only its own folder). The
resolved location is what the caller then reads or writes, so the check and the use cannot disagree.
"""

from __future__ import annotations

import re

from posecluster import storage
from posecluster.serve.access import WHOLE_ROOT, Caller


class PathRefused(ValueError):
    """A location that does not stay under the root and the caller's prefixes."""


def normalise_root(root: str) -> str:
    """The root as the storage layer lists it back (local folders as real absolute paths), no trailing /."""
    real = storage.resolved_local_path(root)
    return (real if real is not None else root).rstrip("/") or "/"


def checked_parts(relative: str | None) -> list[str]:
    """The segments of a path from the browser, or PathRefused."""
    if relative is None or relative == "":
        raise PathRefused("a path relative to the served root is required")
    if "://" in relative or relative.startswith(("/", "~")) or ":" in relative.split("/", 1)[0]:
        raise PathRefused(f"{relative!r}: only paths relative to the served root are allowed")
    if any(ch in relative for ch in "\\%") or any(ord(ch) < 32 or ord(ch) == 127 for ch in relative):
        raise PathRefused(f"{relative!r}: backslashes, percent signs and control characters are not allowed")
    parts = relative.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise PathRefused(f"{relative!r}: '.', '..' and empty segments are not allowed")
    return parts


def _normal_key(relative: str) -> bool:
    return all(part not in ("", ".", "..") and "\\" not in part for part in relative.split("/"))


class Scope:
    """The root as one caller may see it: the whole root (the token) or a lab's prefixes (the proxy)."""

    def __init__(self, root: str, caller: Caller, local: bool | None = None):
        """`root`: already normalise_root()ed; `local`: whether it is a local folder (decided once per app)."""
        self.root = root
        self.caller = caller
        self._local = storage.resolved_local_path(root) is not None if local is None else local

    @property
    def local(self) -> bool:
        return self._local

    def _relative(self, uri: str) -> str | None:
        prefix = self.root.rstrip("/") + "/"
        if uri == self.root:
            return ""
        return uri[len(prefix):] if uri.startswith(prefix) else None

    def _in_prefixes(self, relative: str) -> bool:
        return any(p == WHOLE_ROOT or relative == p or relative.startswith(p + "/") for p in self.caller.prefixes)

    def contain(self, uri: str, shown: str | None = None) -> str:
        """The place `uri` really is, when that lies under the root and the caller's prefixes; else
        PathRefused (naming `shown`, what the caller knows the location as, never the real path)."""
        shown = shown if shown is not None else (self.relative(uri) or "a location outside the served root")
        real = storage.resolved_local_path(uri) if self._local else None
        target = real if real is not None else uri
        relative = self._relative(target)
        if relative is None:
            reason = "a symbolic link leading outside the served root" if real not in (None, uri) else \
                "outside the served root"
            raise PathRefused(f"{shown!r}: {reason}; it is not read")
        if not _normal_key(relative) and relative:
            raise PathRefused(f"{shown!r}: not a normal key ('.', '..' or empty segments); it is not read")
        if not self._in_prefixes(relative):
            raise PathRefused(f"{shown!r}: outside the folders your account may see")
        return target

    def allows(self, uri: str) -> bool:
        try:
            self.contain(uri)
            return True
        except PathRefused:
            return False

    def resolve(self, relative: str | None) -> str:
        """A path from the browser -> the confined URI it names, or PathRefused."""
        return self.contain(storage.join(self.root, *checked_parts(relative)), shown=relative)

    def relative(self, uri: str) -> str | None:
        """What the browser calls `uri` (its path under the root), or None when it lies elsewhere."""
        return self._relative(uri)

    def prefixes_to_list(self) -> list[str]:
        """The URIs whose listings hold everything this caller may see (one listing for a lab's prefix)."""
        if self.caller.whole_root:
            return [self.root]
        return [storage.join(self.root, prefix) for prefix in self.caller.prefixes]

    def redact(self, text: str) -> str:
        """A message for the browser: locations in the caller's folders become paths under the root and
        anything else that looks like a storage location (another lab's, the server's) is hidden, so
        errors never reveal other labs' or the server's paths (the server log keeps the full message)."""
        prefix = self.root.rstrip("/") + "/"

        def shown(match: re.Match) -> str:
            location, tail = _without_tail(match.group(0))
            relative = location[len(prefix):] if location.startswith(prefix) else None
            return (relative if relative and self._in_prefixes(relative) else HIDDEN) + tail

        text = _LOCATION.sub(shown, text)
        # A root path in a context the pattern does not see (after a colon, say): relative for the whole
        # root, hidden for a lab (what follows could be another lab's folder).
        return text.replace(prefix, "" if self.caller.whole_root else HIDDEN + "/")


HIDDEN = "<hidden path>"


def hide_locations(text: str) -> str:
    """Anything in `text` that looks like a storage location (a URI, an absolute local path)."""
    return _LOCATION.sub(lambda match: HIDDEN + _without_tail(match.group(0))[1], text)


def _without_tail(location: str) -> tuple[str, str]:
    """('s3://b/v.mp4', ':') from 's3://b/v.mp4:': the punctuation of the sentence stays visible."""
    kept = location.rstrip(":.;")
    return kept, location[len(kept):]


# A URI with a scheme, or an absolute local path (after a space, quote, parenthesis or at the start).
_LOCATION = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"),]*|(?:(?<=^)|(?<=[\s'\"(=]))/[^\s'\"),]+")
