"""Reads pinned to the identity a job planned (URI + size + ETag or mtime).

A video can change while a job runs: a camera still uploading, a file replaced by a newer recording. A job
that probed one version and decoded another would write rows of the wrong frames. Every read here is
checked against the identity the planner saw:

- S3: every GET and range GET carries `If-Match: <ETag>`, and the ETag each response carries is compared
  too (some S3-compatible servers ignore conditional headers; the comparison still catches a change, and
  the first time it does so a warning says the server ignored If-Match).
- Local files: size and mtime are compared with the pinned ones when the file is opened and before every
  block is read (a file rewritten in place shows a new mtime; one replaced by a rename leaves the opened
  file as it was, which is the version that was planned).
- Other filesystems (memory://, http(s)://): the identity is compared once, at open.

A change raises ObjectChangedError (permanent for this job). Transient faults of a fetch are retried with
backoff (storage.retry) for `patience_s`, then raised as a transient StorageError; nothing is re-decoded.
`PinnedReader` is a seekable binary file for PyAV with a read-ahead buffer that stops at `limit` (the end
of the byte range a segment needs), so a range read costs about its own bytes; `bytes_read` counts what
was fetched, as the storage bill counts it.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Callable

from posecluster.storage import (
    ObjectChangedError,
    ObjectIdentity,
    _is_local,
    _operation,
    filesystem,
    identity_from_info,
    redact_uri,
)
from posecluster.storage.retry import DEFAULT_PATIENCE_S, call

log = logging.getLogger(__name__)
_warned_if_match_ignored: set[str] = set()  # endpoints already reported (one warning per process)

Fetch = Callable[[int, int], bytes]


def _changed(identity: ObjectIdentity, now: str) -> ObjectChangedError:
    return ObjectChangedError(f"{redact_uri(identity.uri)}: changed during the job (planned {identity.size} bytes, "
                              f"version {identity.version!r}; now {now}); the next run will pick it up")


def _s3_fetcher(fs, path: str, identity: ObjectIdentity) -> Fetch:
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(path)
    etag = identity.version.strip('"')
    conditions = {"IfMatch": f'"{etag}"'} if etag else {}

    def get(start: int | None, end: int | None) -> bytes:
        ranged = {"Range": f"bytes={start}-{end - 1}"} if start is not None else {}

        async def request() -> bytes:
            response = await fs._call_s3("get_object", Bucket=bucket, Key=key, **ranged, **conditions)
            try:
                seen = str(response.get("ETag", "")).strip('"')
                if etag and seen and seen != etag:
                    endpoint = str(getattr(fs, "client_kwargs", {}).get("endpoint_url", "")) or "s3"
                    if endpoint not in _warned_if_match_ignored:
                        _warned_if_match_ignored.add(endpoint)
                        log.warning("the storage server at %s ignored If-Match; changed objects are detected "
                                    "from each response's ETag instead", redact_uri(endpoint))
                    raise _changed(identity, f"ETag {seen!r}")
                return await response["Body"].read()
            finally:
                response["Body"].close()

        try:
            return sync(fs.loop, request)
        except OSError as exc:  # s3fs turns 412 Precondition Failed into EINVAL "pre-conditions ..."
            if "pre-condition" in str(exc).lower() or "precondition" in str(exc).lower():
                raise _changed(identity, "a different ETag") from None
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


class HeaderCache:
    """Blocks read outside a segment's own byte range (a container's header and index: an MP4's `moov`,
    a Matroska's tracks and cues), kept per object so that the next segment of the same video on this
    worker does not fetch them again. Bounded; the least recently used object goes first."""

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes = max_bytes
        self._blocks: dict[str, dict[int, bytes]] = {}  # identity key -> start -> block

    def find(self, identity: ObjectIdentity, start: int, size: int) -> bytes | None:
        blocks = self._blocks.get(identity.key())
        if not blocks:
            return None
        self._blocks[identity.key()] = self._blocks.pop(identity.key())  # most recently used
        for first, block in blocks.items():
            if first <= start and start + size <= first + len(block):
                return block[start - first : start - first + size]
        return None

    def add(self, identity: ObjectIdentity, start: int, block: bytes) -> None:
        self._blocks.setdefault(identity.key(), {})[start] = block
        while sum(len(b) for blocks in self._blocks.values() for b in blocks.values()) > self.max_bytes:
            self._blocks.pop(next(iter(self._blocks)))


class PinnedReader(io.RawIOBase):
    """A seekable read-only file over one pinned object, for PyAV.

    Reads are served from one read-ahead block of `block_size` bytes. `window` (first, end) is the byte
    range the caller came for (a segment's media): read-ahead never runs past its end, so a segment costs
    about its own bytes, and blocks read outside it (the header, the index) go to `headers`, when given,
    for the next reader of the same object. Each fetch is retried through transient faults for
    `patience_s`.
    """

    def __init__(self, identity: ObjectIdentity, block_size: int = 1 << 20, window: tuple[int, int] | None = None,
                 patience_s: float = DEFAULT_PATIENCE_S, headers: HeaderCache | None = None):
        super().__init__()
        self.identity, self.block_size, self.patience_s, self.headers = identity, block_size, patience_s, headers
        self.window = window
        self.limit = window[1] if window else None
        self.size = identity.size
        self._pos = 0
        self._start = self._end = 0
        self._block = b""
        self.bytes_read = 0
        self.requests = 0
        self._fetch, self._close = call(self._open, patience_s=patience_s)

    def _open(self):
        with _operation("open", self.identity.uri):
            return _fetcher(self.identity)

    def _load(self, start: int, wanted: int) -> bytes:
        """Fetch [start, start + wanted) plus read-ahead; the new block replaces the old one."""
        outside = self.window is not None and not self.window[0] <= start < self.window[1]
        if outside and self.headers is not None:
            cached = self.headers.find(self.identity, start, wanted)
            if cached is not None:
                return cached
        end = start + max(wanted, self.block_size)
        if self.limit is not None and start < self.limit:
            end = min(end, max(self.limit, start + wanted))  # no read-ahead past the range's end
        end = min(end, self.size)

        def once() -> bytes:
            with _operation("read", self.identity.uri):
                return self._fetch(start, end)

        data = call(once, patience_s=self.patience_s)
        self.requests += 1
        self.bytes_read += len(data)
        self._block, self._start, self._end = data, start, start + len(data)
        if outside and self.headers is not None:
            self.headers.add(self.identity, start, data)
        return data[:wanted]

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self._pos
        size = min(size, self.size - self._pos)
        if size <= 0:
            return b""
        head = b""
        if self._start <= self._pos < self._end:  # (part of) it is in the block: fetch only the rest
            head = self._block[self._pos - self._start : self._pos - self._start + size]
        rest = size - len(head)
        data = head + (self._load(self._pos + len(head), rest) if rest else b"")
        self._pos += len(data)
        return data

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


def open_pinned(identity: ObjectIdentity, block_size: int = 1 << 20, window: tuple[int, int] | None = None,
                patience_s: float = DEFAULT_PATIENCE_S, headers: HeaderCache | None = None) -> PinnedReader:
    return PinnedReader(identity, block_size=block_size, window=window, patience_s=patience_s, headers=headers)
