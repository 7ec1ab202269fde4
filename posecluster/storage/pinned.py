"""Reads pinned to the identity a job planned (URI + size + ETag or mtime).

A video can change while a job runs: a camera still uploading, a file replaced by a newer recording. A job
that probed one version and decoded another would write rows of the wrong frames. Every read here is
checked against the identity the planner saw:

- S3: every GET and range GET carries a condition on the planned version: `If-Match: <ETag>` where the
  ETag is a strong one, else the version id, else `If-Unmodified-Since: <LastModified>`; an object with
  none of them is refused (not sharded), with the reason. Every response's total size, ETag and
  last-modified time are compared too (some S3-compatible servers ignore conditional headers; the
  comparison still catches a change, and the first time it does so a warning says so). A 412 is known by
  its status, whatever the server's body says.
- Local files: size and mtime are compared with the pinned ones when the file is opened and before every
  block is read (a file rewritten in place shows a new mtime; one replaced by a rename leaves the opened
  file as it was, which is the version that was planned).
- Other filesystems (memory://, http(s)://): the identity is compared once, at open.

A change raises ObjectChangedError (permanent for this job). Transient faults of a fetch are retried with
backoff (storage.retry) for `patience_s`, then raised as a transient StorageError; nothing is re-decoded.
`PinnedReader` is a seekable binary file for PyAV whose read-ahead (`ReadAhead`) fits what it is read for
(a segment's byte range in one request; an index by growing pieces and its tail in one), so a read costs
about its own bytes; `bytes_read` and `requests` count what was fetched, as a storage bill counts them.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from posecluster.storage import (
    ObjectChangedError,
    ObjectIdentity,
    StorageError,
    _check,
    _is_local,
    _operation,
    filesystem,
    identity_from_info,
    last_modified,
    redact_uri,
)
from posecluster.storage.retry import DEFAULT_PATIENCE_S, call, http_status

log = logging.getLogger(__name__)
_warned_if_match_ignored: set[str] = set()  # endpoints already reported (one warning per process)

Fetch = Callable[[int, int], bytes]
_ETAG = re.compile(r"[0-9A-Za-z+/=_-]{8,}")  # an entity tag as S3-compatible stores make them (no date, no spaces)


def _changed(identity: ObjectIdentity, now: str) -> ObjectChangedError:
    return ObjectChangedError(f"{redact_uri(identity.uri)}: changed during the job (planned {identity.size} bytes, "
                              f"version {identity.version!r}; now {now}); the next run will pick it up")


def _pin_conditions(identity: ObjectIdentity) -> dict:
    """The request parameters that make a GET answer only for the planned version, strongest first: the
    ETag (If-Match), else the version id (that version's bytes never change), else the last-modified
    time (If-Unmodified-Since). With none of them the object cannot be pinned: refused, with the reason."""
    etag = identity.version.strip('"')
    if _ETAG.fullmatch(etag):
        return {"IfMatch": f'"{etag}"'}
    if identity.version_id:
        return {"VersionId": identity.version_id}
    if identity.modified:
        from datetime import datetime

        return {"IfUnmodifiedSince": datetime.fromisoformat(identity.modified)}
    raise StorageError(f"{redact_uri(identity.uri)}: cannot be read pinned to the planned version: the server gave "
                       f"no strong ETag (got {identity.version!r}), version id or modification time, so a "
                       "replaced object could not be told from the planned one; not sharded")


def _opaque_tag(etag: str) -> str:
    etag = etag.strip()
    return (etag[2:] if etag.startswith("W/") else etag).strip('"')


def _response_mismatch(identity: ObjectIdentity, response: dict) -> str | None:
    """How a response shows another object than the planned one (checked on every response, also where a
    server ignores conditional headers), or None."""
    if "ContentRange" in response:  # a range: "bytes 0-99/<total>"
        total = str(response["ContentRange"]).rpartition("/")[2]
        size = int(total) if total.isdigit() else None
    else:  # the whole object
        size = response.get("ContentLength")
    if size is not None and int(size) != identity.size:
        return f"{size} bytes"
    seen = _opaque_tag(str(response.get("ETag", "")))
    pinned_etag = _opaque_tag(identity.version) if identity.version != identity.modified else ""
    if seen and pinned_etag and seen != pinned_etag:  # the weak comparison of RFC 9110: W/ aside
        return f"ETag {seen!r}"
    modified = last_modified(response.get("LastModified"))
    pinned_by_time = "IfUnmodifiedSince" in _pin_conditions(identity)  # only then: listings and GETs may round apart
    if pinned_by_time and modified and modified != identity.modified:
        return f"modified {modified}"
    return None


def _s3_fetcher(fs, path: str, identity: ObjectIdentity) -> Fetch:
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(path)
    conditions = _pin_conditions(identity)

    def get(start: int | None, end: int | None) -> bytes:
        ranged = {"Range": f"bytes={start}-{end - 1}"} if start is not None else {}

        async def request() -> bytes:
            response = await fs._call_s3("get_object", Bucket=bucket, Key=key, **ranged, **conditions)
            try:
                mismatch = _response_mismatch(identity, response)
                if mismatch:
                    endpoint = str(getattr(fs, "client_kwargs", {}).get("endpoint_url", "")) or "s3"
                    if endpoint not in _warned_if_match_ignored:
                        _warned_if_match_ignored.add(endpoint)
                        log.warning("the storage server at %s ignored a conditional read (If-Match, VersionId or "
                                    "If-Unmodified-Since); "
                                    "changed objects are detected from each response instead", redact_uri(endpoint))
                    raise _changed(identity, mismatch)
                return await response["Body"].read()
            finally:
                response["Body"].close()

        try:
            return sync(fs.loop, request)
        except OSError as exc:  # 412 Precondition Failed, by status: servers word the body differently
            if http_status(exc) == 412:
                raise _changed(identity, "a different version (the store refused the pinned read: 412)") from None
            raise

    return get


class _LocalFile:
    """A local file opened once; size and mtime checked before every read."""

    def __init__(self, path: str, identity: ObjectIdentity):
        self.identity = identity
        self.fd = os.open(path, os.O_RDONLY)
        self.check()

    def check(self) -> None:
        stat = os.fstat(self.fd)
        if stat.st_size != self.identity.size or (self.identity.version and str(stat.st_mtime) != self.identity.version):
            raise _changed(self.identity, f"{stat.st_size} bytes, mtime {stat.st_mtime}")

    def read(self, start: int, end: int) -> bytes:
        self.check()
        return os.pread(self.fd, end - start, start)

    def close(self) -> None:
        os.close(self.fd)


def _fetcher(identity: ObjectIdentity) -> tuple[Fetch, Callable[[], None]]:
    """(fetch(start, end) -> bytes, close) for the pinned object."""
    _check(identity.uri, "read")
    fs, path = filesystem(identity.uri)
    if _is_local(fs):
        local = _LocalFile(path, identity)
        return local.read, local.close
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if protocols & {"s3", "s3a"}:
        get = _s3_fetcher(fs, path, identity)
        return get, lambda: None
    now = identity_from_info(identity.uri, fs.info(path))
    if (now.size, now.version) != (identity.size, identity.version):
        raise _changed(identity, f"{now.size} bytes, version {now.version!r}")
    handle = fs.open(path, "rb")

    def generic(start: int, end: int) -> bytes:
        handle.seek(start)
        return handle.read(end - start)

    return generic, handle.close


def read_pinned(identity: ObjectIdentity, patience_s: float = DEFAULT_PATIENCE_S) -> bytes:
    """The whole object, as planned (one GET on S3), or ObjectChangedError."""
    _check(identity.uri, "read")

    def once() -> bytes:
        with _operation("read", identity.uri):
            fs, path = filesystem(identity.uri)
            if not _is_local(fs) and ({fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)) & {"s3", "s3a"}:
                return _s3_fetcher(fs, path, identity)(None, None)
            fetch, close = _fetcher(identity)
            try:
                data = fetch(0, identity.size)
                if len(data) != identity.size:
                    raise _changed(identity, f"{len(data)} bytes")
                return data
            finally:
                close()

    return call(once, patience_s=patience_s)


@dataclass(frozen=True)
class ReadAhead:
    """How much a PinnedReader fetches when a read misses what it holds.

    Decoding (media data, forward): `block` bytes, never past the end of `window` (the byte range the
    caller came for: a segment's media, fetched in one request), small pieces (`beyond`) after it.
    Planning (an index read in small pieces, back and forth between the head and the index): `block`
    bytes at first, `grow` times more for each read that continues where the last fetch ended (a long
    index in a few requests), and the whole rest of the object when it is at most `tail` bytes (an index
    at the end: an MP4's `moov`, a Matroska's cues, an AVI's idx1, in one request).
    """

    block: int = 1 << 20
    window: tuple[int, int] | None = None
    beyond: int = 64 << 10
    grow: int = 1
    most: int = 64 << 20
    tail: int = 0

    @classmethod
    def planning(cls, size: int) -> "ReadAhead":
        return cls(block=64 << 10, grow=4, tail=max(size // 100, 1 << 20))


class PinnedReader(io.RawIOBase):
    """A seekable read-only file over one pinned object, for PyAV: reads are served from the last few
    blocks fetched (`keep`), and a miss fetches as `ahead` says. Each fetch is retried through transient
    faults for `patience_s`."""

    def __init__(self, identity: ObjectIdentity, ahead: ReadAhead = ReadAhead(), keep: int = 2,
                 patience_s: float = DEFAULT_PATIENCE_S):
        super().__init__()
        self.identity, self.ahead, self.keep, self.patience_s = identity, ahead, keep, patience_s
        self.size = identity.size
        self._pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()  # start -> bytes, least recently used first
        self._last_end, self._last_length = -1, 0
        self.bytes_read = 0
        self.requests = 0
        self._fetch_range, self._close = call(self._open, patience_s=patience_s)

    def _open(self):
        with _operation("open", self.identity.uri):
            return _fetcher(self.identity)

    def _fetch(self, start: int, end: int) -> bytes:
        def once() -> bytes:
            with _operation("read", self.identity.uri):
                return self._fetch_range(start, end)

        data = call(once, patience_s=self.patience_s)
        self.requests += 1
        self.bytes_read += len(data)
        return data

    def _extent(self, start: int, wanted: int) -> int:
        """Where a fetch from `start` for at least `wanted` bytes ends."""
        ahead = self.ahead
        if ahead.tail and self.size - start <= ahead.tail:
            return self.size
        length = ahead.block
        if ahead.grow > 1 and start == self._last_end:
            length = min(self._last_length * ahead.grow, ahead.most)
        end = start + max(wanted, length)
        if ahead.window is not None:
            limit = ahead.window[1]
            end = min(end, max(limit, start + wanted)) if start < limit else start + max(wanted, ahead.beyond)
        return min(end, self.size)

    def _block_at(self, position: int) -> tuple[int, bytes] | None:
        for start, block in self._blocks.items():
            if start <= position < start + len(block):
                self._blocks.move_to_end(start)
                return start, block
        return None

    def _load(self, start: int, wanted: int) -> tuple[int, bytes]:
        block = self._fetch(start, self._extent(start, wanted))
        self._hold(start, block, grows_from=len(block))
        return start, block

    def _hold(self, start: int, block: bytes, grows_from: int) -> None:
        """Keep a fetched block (the `keep` most recent); a read continuing after it grows from `grows_from`."""
        self._last_end, self._last_length = start + len(block), grows_from
        self._blocks[start] = block
        while len(self._blocks) > self.keep:
            self._blocks.popitem(last=False)

    def prefetch(self, start: int, stop: int) -> None:
        """Fetch [start, stop) in one request now, for a caller that knows where what it will read lies
        (an MP4's `moov` after its head): PyAV would otherwise pull it in growing pieces. Bytes already
        held are not fetched again; a range over `most` bytes is declined (a box size read from a damaged
        file must not pull the object into memory: the reads then fetch as usual). A read that continues
        past the range fetches as if a `block` had ended there (media data follows, not more index)."""
        start, stop = max(0, start), min(stop, self.size)
        held = self._block_at(start)
        if held is not None:
            start = held[0] + len(held[1])
        if stop <= start or stop - start > self.ahead.most:
            return
        self._hold(start, self._fetch(start, stop), grows_from=self.ahead.block)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self._pos
        size = min(size, self.size - self._pos)
        parts = []
        while size > 0:
            found = self._block_at(self._pos) or self._load(self._pos, size)
            start, block = found
            part = block[self._pos - start : self._pos - start + size]
            if not part:
                break
            parts.append(part)
            self._pos += len(part)
            size -= len(part)
        return b"".join(parts)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._close()
        super().close()


def open_pinned(identity: ObjectIdentity, ahead: ReadAhead = ReadAhead(), keep: int = 2,
                patience_s: float = DEFAULT_PATIENCE_S) -> PinnedReader:
    return PinnedReader(identity, ahead=ahead, keep=keep, patience_s=patience_s)
