"""Retrying storage calls through transient faults: exponential backoff with jitter (tenacity).

Transient: the endpoint refused or dropped the connection, a timeout, a 5xx, throttling (SlowDown).
Not transient: a missing object, a denied request, bad input; those fail at once. Callers retry the
smallest step that failed (a write, a fetch), never the inference that produced what is being written.
"""

from __future__ import annotations

import errno
import logging
from typing import Callable, TypeVar

from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_delay, wait_exponential_jitter

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long one call keeps trying before the error reaches the caller (then the job's scheduler decides).
DEFAULT_PATIENCE_S = 300.0

_TRANSIENT_NAMES = {
    # botocore / aiobotocore / aiohttp / urllib3, matched by class name so this module imports none of them
    "EndpointConnectionError", "ConnectionClosedError", "ConnectTimeoutError", "ReadTimeoutError",
    "ClientConnectorError", "ServerDisconnectedError", "ClientOSError", "ClientPayloadError",
    "ProtocolError", "IncompleteRead", "FSTimeoutError", "ResponseStreamingError",
}
# ConditionalRequestConflict (409): another conditional write to the key is in flight; AWS says to retry.
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                    "ConditionalRequestConflict",
                    "InternalError", "ServiceUnavailable", "503", "500", "502", "504"}
_TRANSIENT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EPIPE,
                     errno.EHOSTUNREACH, errno.ENETUNREACH}


def _chain(exc: BaseException):
    """The exception, then its causes (a Ray task error's `cause`: the exception the task raised)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__


def http_status(exc: BaseException) -> int | None:
    """The HTTP status a storage server answered with, found anywhere in `exc`'s cause chain (s3fs keeps
    botocore's error as the cause of the OSError it raises). Errors are told apart by status, never by
    message text: servers word their bodies differently (RGW's 412 has no <Condition>, moto's has)."""
    for item in _chain(exc):
        response = getattr(item, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status:
                return int(status)
    return None


def error_code(exc: BaseException) -> str:
    """The S3 error code (SignatureDoesNotMatch, NoSuchKey, ...) anywhere in `exc`'s cause chain, or ''."""
    for item in _chain(exc):
        response = getattr(item, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code"):
            return str(response["Error"]["Code"])
    return ""


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` (or anything in its cause chain) is a storage fault that may pass by itself."""
    for item in _chain(exc):
        flagged = getattr(item, "transient", None)
        if isinstance(flagged, bool):
            return flagged  # decided where the fault happened (StorageError), kept through pickling
        if isinstance(item, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
            return False  # NoSuchKey / AccessDenied do not get better with time
        if isinstance(item, (ConnectionError, TimeoutError)) or type(item).__name__ in _TRANSIENT_NAMES:
            return True
        if isinstance(item, OSError) and item.errno in _TRANSIENT_ERRNOS:
            return True
        response = getattr(item, "response", None)  # botocore ClientError
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if code in _TRANSIENT_CODES or int(status) >= 500:
                return True
    return False


def retrying(patience_s: float = DEFAULT_PATIENCE_S, initial_s: float = 0.2, max_wait_s: float = 10.0) -> Retrying:
    """A tenacity controller: retry transient faults, doubling the wait (with jitter) up to max_wait_s,
    for at most patience_s; then the last error is raised as it was."""
    return Retrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(multiplier=initial_s, max=max_wait_s, jitter=initial_s),
        stop=stop_after_delay(patience_s),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )


def call(fn: Callable[..., T], *args, patience_s: float = DEFAULT_PATIENCE_S, **kwargs) -> T:
    """fn(*args, **kwargs), retried through transient storage faults."""
    return retrying(patience_s)(fn, *args, **kwargs)


class RetryingReader:
    """A seekable read-only file over an object that reopens at the same offset after a transient
    fault, so a decoder streaming a large video survives a storage hiccup instead of losing frames.
    Counts the bytes it returns (`bytes_read`)."""

    def __init__(self, uri: str, patience_s: float = DEFAULT_PATIENCE_S, **reads):
        from posecluster import storage

        self.uri, self.patience_s = uri, patience_s
        self._open = lambda: storage.open_uri(uri, "rb", **reads)  # reads: block_size, cache_type
        self._fh = call(self._open, patience_s=patience_s)
        self._pos = 0
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        for attempt in retrying(self.patience_s):
            with attempt:
                if self._fh is None:  # dropped by the previous attempt's fault
                    self._fh = self._open()
                    self._fh.seek(self._pos)
                try:
                    data = self._fh.read(size)
                except Exception as exc:
                    if is_transient(exc):
                        self._drop()
                    raise
        self._pos += len(data)
        self.bytes_read += len(data)
        return data

    def _drop(self) -> None:
        try:
            self._fh.close()
        except Exception:  # the connection is already gone; nothing to flush on a reader
            pass
        self._fh = None

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._fh is None:
            self._fh = call(self._open, patience_s=self.patience_s)
        self._pos = self._fh.seek(offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        if self._fh is not None:
            self._drop()

    def __enter__(self) -> "RetryingReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_retrying(uri: str, patience_s: float = DEFAULT_PATIENCE_S, **reads) -> RetryingReader:
    return RetryingReader(uri, patience_s, **reads)
