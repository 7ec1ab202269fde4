"""The one storage seam: every location in posecluster is a URI string handled here.

`s3://bucket/key`, `file:///abs/path`, `memory://x` and plain paths all work. Endpoint and credentials
come from the environment (`AWS_ENDPOINT_URL`, `AWS_*`, `FSSPEC_S3_*`) or from explicit storage options;
they are never logged. No other module imports fsspec, os.path or pathlib for data locations.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import os
import posixpath
import re
import tempfile
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import IO, Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

__all__ = [
    "ObjectIdentity",
    "StorageError",
    "absolute",
    "atomic_upload",
    "arrow_filesystem",
    "atomic_write_bytes",
    "basename",
    "canonical_uri",
    "check_conditional_create",
    "create_exclusive",
    "exists",
    "filesystem",
    "identity",
    "join",
    "list_files",
    "local_copy",
    "local_path",
    "ObjectChangedError",
    "open_uri",
    "parent",
    "read_bytes",
    "redact_uri",
    "RedactingFilter",
    "remove",
    "resolved_local_path",
    "scratch_dir",
    "set_default_options",
    "stem",
]

# Storage options shared by every call (set once at the edge, e.g. an endpoint URL). Listings are never
# cached: other processes (Ray workers, other jobs) write to the same buckets. botocore tries a request
# twice, no more: its default (legacy mode, under s3fs's own retries) spends ~13 s on one refused
# connection, a hidden layer under storage.retry's budgets (--storage-patience) that made a short budget
# a lie and let a job hear of an outage only when it was nearly over.
_BASE_OPTIONS: dict[str, dict] = {
    "s3": {"use_listings_cache": False, "config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 2}}},
}
_default_options: dict[str, dict] = {protocol: dict(options) for protocol, options in _BASE_OPTIONS.items()}


class StorageError(OSError):
    """A storage operation failed; the message names the URI and the operation, never credentials.

    `transient` says whether the fault may pass by itself (connection refused, timeout, 5xx, throttling).
    It is data, not only the `__cause__` chain, because Ray pickles exceptions between processes and a
    pickled exception loses its cause: a worker's outage must still reach the driver as an outage."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient

    def __reduce__(self):
        return (type(self), (str(self.args[0]), self.transient))


class ObjectChangedError(StorageError):
    """The object is no longer the version the job planned (rewritten, still uploading, replaced).
    Permanent for this job: the video fails alone and the next run picks up the new version."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message, transient=False)


# Environment variables and storage options whose values must never reach a message.
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_SECRET_OPTION_WORDS = ("secret", "token", "password", "credential")


def _secrets() -> list[str]:
    found = [os.environ.get(name, "") for name in _SECRET_ENV]
    for options in _default_options.values():
        found += [str(v) for k, v in options.items() if any(w in k.lower() for w in _SECRET_OPTION_WORDS)]
    return [s for s in found if len(s) >= 4]


def _redact(text: str) -> str:
    for secret in _secrets():
        text = text.replace(secret, "***")
    return _URI_SECRETS.sub(_redact_match, text)


# A URI's own secrets: user info (`scheme://user:password@host/...`) and query strings (presigned URLs
# carry X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token; other stores sig=, token=, ...).
_URI_SECRETS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s?#]*@)?(?P<rest>[^\s?#'\"]*)"
                          r"(?P<query>\?[^\s#'\"]*)?")


def _redact_match(match: re.Match) -> str:
    userinfo = "***@" if match.group("userinfo") else ""
    return f"{match.group('scheme')}{userinfo}{match.group('rest')}{_redact_query(match.group('query') or '')}"


# The query parameters whose values are written in clear: those known to select an object (an object
# store's version, a web store's object id), never a credential. Any other value may be one (nginx's md5,
# Akamai's hdnts, Cloudflare's verify, a bare `s` or `t`): an allowlist, not a list of secret-looking names.
_SHOWN_PARAMETERS = frozenset({"versionid", "version", "generation", "id"})
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._-]{1,128}")  # a version id's characters: no nested URL or `;sig=`


def _value_may_show(name: str, value: str) -> bool:
    """Whether a query parameter's value may be written in clear: an allowlisted selector's
    (`versionId`, `generation`, `id`), holding a plain identifier."""
    plain = urllib.parse.unquote_plus(name).lower()
    return plain in _SHOWN_PARAMETERS and _PLAIN_VALUE.fullmatch(value) is not None


def _redact_query(query: str) -> str:
    """`?a=1&b=2` with every value replaced by *** but an allowlisted selector's (_value_may_show); a
    parameter without a value is replaced whole (its name may be the secret)."""
    if not query:
        return query
    kept = []
    for pair in (p for p in query[1:].split("&") if p):
        name, equals, _value = pair.partition("=")
        kept.append(pair if equals and _value_may_show(name, _value) else f"{name}=***" if equals else "***")
    return "?" + "&".join(kept)


_WEB = ("http", "https")  # where a query string is a query (an object store's key may hold "?" or "#")


def _parts(uri: str) -> tuple[str, str, str, str]:
    """(scheme, user info, the rest, query) of one URI. Only web URLs have a query: in `s3://b/a?b#c`,
    `a?b#c` is the key (S3 keys and file names may hold '?', '#' and spaces)."""
    scheme, _, rest = uri.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    query = ""
    if scheme.lower() in _WEB:
        path, mark, query = path.partition("?")
        path = path.split("#", 1)[0]
        query = mark + query.split("#", 1)[0]
    return scheme, userinfo + at, host + slash + path, query


def redact_uri(uri: str) -> str:
    """`uri` fit for a log, a manifest or `_meta.json`: user info and a web URL's query values replaced by
    *** (a presigned URL's signature and credential, a password in `scheme://user:pass@host`), but for
    an allowlisted selector's (`versionId=3`, `id=2`: _value_may_show), so that a record still names the
    object it was made from; a text that holds URIs among other words is scrubbed of the same (and of
    known secrets)."""
    if "://" not in uri:
        return uri
    if any(ch.isspace() for ch in uri) and not uri.split("://", 1)[0].isalnum():
        return _redact(uri)  # a message, not one URI
    scheme, userinfo, rest, query = _parts(uri)
    return _redact_known(f"{scheme}://{'***@' if userinfo else ''}{rest}{_redact_query(query)}")


def _redact_known(text: str) -> str:
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


class RedactingFilter:
    """A logging filter (installed on the handlers at the command line's edge) that takes credentials and
    URI secrets out of every record, whatever library wrote it."""

    def filter(self, record) -> bool:
        message = record.getMessage()
        redacted = _redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def canonical_uri(uri: str) -> str:
    """The object a URI names, without what only grants access to it (user info; a web URL's signature
    query parameters, which change with every signature): what identities and output names are built
    from, so a video presigned twice is still one video. What selects an object stays (`versionId`,
    `?id=1` against `?id=2`), its parameters sorted. `file:///x` and `/x` are one object."""
    if "://" not in uri:
        return uri
    scheme, _, rest, query = _parts(uri)
    if scheme.lower() == "file":
        return "/" + rest.lstrip("/")
    selecting = _selecting_query(query)
    return f"{scheme}://{rest}" + (f"?{selecting}" if selecting else "")


def object_path(uri: str) -> str:
    """canonical_uri without a web URL's query: the object's path, whose suffix says what it holds
    (`https://host/v/mouse.mp4?versionId=3` -> `https://host/v/mouse.mp4`)."""
    if "://" not in uri:
        return uri
    scheme, _, rest, _ = _parts(uri)
    return canonical_uri(f"{scheme}://{rest}")


def selecting_query(uri: str) -> str:
    """What of a web URL's query selects the object (`versionId=3`, `id=2`; access parameters left out),
    '' when nothing does."""
    return _selecting_query(_parts(uri)[3]) if "://" in uri else ""


# Query parameters that only grant access (AWS SigV2/SigV4, Google Cloud Storage, Azure SAS, CloudFront):
# a new signature for the same object changes them.
_ACCESS_PARAMETERS = frozenset({
    "signature", "expires", "awsaccesskeyid", "googleaccessid", "policy", "key-pair-id", "token",
    "sig", "se", "st", "sp", "sv", "sr", "ss", "srt", "spr", "si", "skoid", "sktid", "skt", "ske", "sks", "skv",
})
_ACCESS_PREFIXES = ("x-amz-", "x-goog-")


def _selecting_query(query: str) -> str:
    """A web URL's query (`?a=1&b=2`) without its access parameters, the rest sorted ('' when none)."""
    pairs = [p for p in query.lstrip("?").split("&") if p]
    kept = [p for p in pairs if not _grants_access(p.split("=", 1)[0])]
    return "&".join(sorted(kept))


def _grants_access(name: str) -> bool:
    name = name.lower()
    return name in _ACCESS_PARAMETERS or name.startswith(_ACCESS_PREFIXES)


def _library_errors() -> tuple[type[BaseException], ...]:
    """What fsspec/s3fs/botocore raise for a failed request (botocore only where it is installed)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # local storage only
        return (OSError,)
    return (OSError, BotoCoreError, ClientError)


@contextlib.contextmanager
def _operation(name: str, uri: str) -> Iterator[None]:
    """Turn a library's failure into a StorageError naming the URI and the operation. A missing object
    stays a FileNotFoundError (callers treat absence as an answer, not a failure)."""
    try:
        yield
    except (FileNotFoundError, FileExistsError, StorageError):
        raise
    except _library_errors() as exc:
        from posecluster.storage.retry import error_code, http_status, is_transient

        reason = str(exc).strip()
        status, code = http_status(exc), error_code(exc)
        if reason in ("", "None") or status:  # servers differ in what they put in a body: say the status and code
            detail = " ".join(str(p) for p in (status, code) if p)
            reason = f"{detail}: {reason}" if reason not in ("", "None") else detail or type(exc).__name__
        reason = _redact(reason)
        hint = ""
        if status in (401, 403) or any(w in reason.lower() for w in ("access key", "signature", "credential",
                                                                      "forbidden", "denied")):
            hint = " (check the storage credentials and endpoint: AWS_* / AWS_ENDPOINT_URL)"
        raise StorageError(f"{redact_uri(uri)}: {name} failed: {type(exc).__name__}: {reason}{hint}",
                           transient=is_transient(exc)) from exc


def set_default_options(protocol: str, options: dict) -> None:
    """Register options (endpoint, anon, ...) used for every URI of `protocol` unless overridden (over
    posecluster's own defaults for it, which an option of the same name replaces)."""
    _default_options[protocol] = {**_BASE_OPTIONS.get(protocol, {}), **options}


def _protocol(uri: str) -> str:
    return uri.split("://", 1)[0] if "://" in uri else "file"


# botocore >= 1.36 sends every upload as `aws-chunked` with a CRC32 trailer unless told otherwise; Ceph RGW 16
# (and older MinIO, many gateways) answer 411 MissingContentLength to that over HTTPS. Checksums only where
# an operation requires them work on every server; AWS_REQUEST_CHECKSUM_CALCULATION=when_supported (or a
# `request_checksum_calculation` storage option) restores botocore's default where a server supports it.
CHECKSUM_ENV = "AWS_REQUEST_CHECKSUM_CALCULATION"


def _s3_options(options: dict) -> dict:
    config = dict(options.get("config_kwargs") or {})
    if CHECKSUM_ENV not in os.environ and not _profile_sets_checksums():
        config.setdefault("request_checksum_calculation", "when_required")
        config.setdefault("response_checksum_validation", "when_required")
    return {**options, "config_kwargs": config}


def _profile_sets_checksums() -> bool:
    """Whether the AWS profile in use (~/.aws/config) chooses checksums itself: then botocore's reading
    of it stands, as the environment variable's does."""
    return _profile_sets_checksums_in(os.environ.get("AWS_CONFIG_FILE", ""), os.environ.get("AWS_PROFILE", ""))


@functools.lru_cache(maxsize=8)  # read once per config file and profile: filesystem() runs for every call
def _profile_sets_checksums_in(config_file: str, profile: str) -> bool:
    try:
        import botocore.session
    except ImportError:
        return False
    try:
        scoped = botocore.session.get_session().get_scoped_config()
    except Exception:  # no such profile: botocore will say so when a client is made
        return False
    return "request_checksum_calculation" in scoped


def filesystem(uri: str, **options) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem for `uri` and the path inside it."""
    protocol = _protocol(uri)
    merged = {**_default_options.get(protocol, {}), **options}
    if protocol in ("s3", "s3a"):
        merged = _s3_options(merged)
    fs, path = fsspec.core.url_to_fs(uri, **merged)
    return fs, path


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def absolute(uri: str) -> str:
    """A plain local path made absolute (other processes, e.g. Ray Train workers, run elsewhere);
    URIs with a scheme are returned unchanged."""
    if "://" in uri or not uri:
        return uri
    return os.path.abspath(os.path.expanduser(uri))


def join(base: str, *parts: str) -> str:
    """Join URI parts with '/', keeping the scheme."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def basename(uri: str) -> str:
    return posixpath.basename(uri.rstrip("/"))


def stem(uri: str) -> str:
    name = basename(uri)
    return name.rsplit(".", 1)[0] if "." in name else name


def parent(uri: str) -> str:
    scheme, sep, rest = uri.rpartition("://")
    head = posixpath.dirname(rest.rstrip("/"))
    return f"{scheme}{sep}{head}" if sep else head


def open_uri(uri: str, mode: str = "rb", *, block_size: int | None = None, cache_type: str | None = None,
             **options) -> IO:
    """Open an object for streaming reads (or plain writes; prefer atomic_* for outputs). `block_size`
    and `cache_type` shape an object store's reads (fsspec: each miss fetches a block; s3fs's default is
    5 MB, too much for reading an index by ranges); local files ignore them."""
    _check(uri, "write" if any(c in mode for c in "wax+") else "read")
    with _operation("open", uri):
        fs, path = filesystem(uri, **options)
        reads = {} if _is_local(fs) else {k: v for k, v in (("block_size", block_size), ("cache_type", cache_type)) if v}
        try:
            return fs.open(path, mode, **reads)
        except FileNotFoundError:
            raise FileNotFoundError(f"{uri}: no such object") from None


def read_bytes(uri: str) -> bytes:
    _check(uri, "read")
    fs, path = filesystem(uri)
    with _operation("read", uri):
        try:
            return fs.cat_file(path)  # one GET (opening a file first costs a HEAD on object stores)
        except FileNotFoundError:
            raise FileNotFoundError(f"{uri}: no such object") from None


def file_sha256(uri: str) -> str:
    """The sha256 of the object or file at `uri`, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open_uri(uri) as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def exists(uri: str) -> bool:
    _check(uri, "read")
    with _operation("check existence", uri):
        fs, path = filesystem(uri)
        return fs.exists(path)


def remove(uri: str, recursive: bool = False) -> None:
    _check(uri, "write")
    with _operation("remove", uri):
        fs, path = filesystem(uri)
        if fs.exists(path):
            fs.rm(path, recursive=recursive)


def list_files(prefix: str, suffixes: tuple[str, ...] = (), recursive: bool = True) -> list[str]:
    """Sorted URIs of the files under `prefix` (a folder) whose names end with one of `suffixes`."""
    _check(prefix, "list")
    with _operation("list", prefix):
        fs, path = filesystem(prefix)
        if not fs.exists(path):
            raise FileNotFoundError(f"{prefix}: no such folder or prefix")
        found = fs.find(path) if recursive else [p for p in fs.ls(path, detail=False) if fs.isfile(p)]
    wanted = tuple(s.lower() for s in suffixes)
    out = [p for p in found if not wanted or p.lower().endswith(wanted)]
    return _listed(prefix, sorted(_unstrip(prefix, fs, p) for p in out))


def _unstrip(prefix: str, fs: fsspec.AbstractFileSystem, path: str) -> str:
    """Give a path returned by `fs` the scheme of the prefix it was listed from."""
    if _is_local(fs):
        return f"file://{path}" if prefix.startswith("file://") else path
    return fs.unstrip_protocol(path)


@dataclass(frozen=True)
class ObjectIdentity:
    """What makes an object 'the same object': its URI, size and version tag (ETag or mtime); for pinning
    reads where the tag is no strong ETag, also the store's version id and last-modified time."""

    uri: str
    size: int
    version: str
    # How to pin a read where `version` is no strong ETag; not part of what makes two identities equal (a
    # listing has no version ids, and reports times to the millisecond where a HEAD gives seconds).
    version_id: str = field(default="", compare=False)
    modified: str = field(default="", compare=False)  # ISO 8601 UTC, whole seconds (S3: LastModified)

    def key(self) -> str:
        """The same object however it was reached (a presigned URL's signature is not part of it)."""
        return f"{canonical_uri(self.uri)}|{self.size}|{self.version}"


def identity(uri: str) -> ObjectIdentity:
    _check(uri, "read")
    with _operation("stat", uri):
        fs, path = filesystem(uri)
        try:
            info = fs.info(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{uri}: no such object") from None
    return identity_from_info(uri, info)


def last_modified(value) -> str:
    """A store's LastModified as ISO 8601 UTC in whole seconds: what a listing (milliseconds), a HEAD and a
    GET (an HTTP date) all agree on; '' when there is none."""
    if not hasattr(value, "isoformat"):
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc)
    return value.replace(microsecond=0, tzinfo=datetime.timezone.utc).isoformat()


def identity_from_info(uri: str, info: dict) -> ObjectIdentity:
    """An identity from a filesystem's details of one object (an info() call or a listing's entry)."""
    modified = last_modified(info.get("LastModified"))
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or modified or ""
    version_id = info.get("VersionId") or info.get("version_id") or ""
    return ObjectIdentity(uri=uri, size=int(info.get("size") or 0), version=str(version).strip('"'),
                          version_id="" if version_id == "null" else str(version_id), modified=modified)


NAME_MAX_BYTES = 255  # a file name's limit on ext4, XFS, APFS, NTFS (in bytes, UTF-8)


def _temporary_path(path: str) -> str:
    """A name beside `path` to write it under before the rename: hidden, ending in `.tmp-<uuid>` (never in
    an output's suffix, so no listing takes it for one), and never longer than a name may be, whatever
    the final name's length (the final name is cut to fit)."""
    folder, name = posixpath.split(path)
    tail = f".tmp-{uuid.uuid4().hex}"
    room = NAME_MAX_BYTES - len(tail) - 1
    kept = name.encode()[:room].decode(errors="ignore")
    return posixpath.join(folder, f".{kept}{tail}")


def _publish_local(path: str, write) -> None:
    """Write through a temporary file beside `path`, then rename: readers never see a partial file."""
    os.makedirs(posixpath.dirname(path) or ".", exist_ok=True)
    tmp = _temporary_path(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_bytes(uri: str, data: bytes) -> None:
    """Write `data` so the object appears whole or not at all."""
    _check(uri, "write")
    with _operation("write", uri):
        fs, path = filesystem(uri)
        if _is_local(fs):
            _publish_local(path, lambda fh: fh.write(data))
        else:
            # An object store PUT is atomic: readers see the old object or the whole new one.
            fs.pipe_file(path, data)


def create_exclusive(uri: str, data: bytes) -> bool:
    """Create the object with `data` only if nothing is there yet; True when this call created it.

    Two processes racing for the same URI cannot both win: locally the finished file is hard-linked into
    place (link fails on an existing name); on S3 it is a conditional PUT (If-None-Match: *), which the
    store refuses when the key exists.
    """
    _check(uri, "write")
    with _operation("create", uri):
        return _create_exclusive(uri, data)


def _create_exclusive(uri: str, data: bytes) -> bool:
    fs, path = filesystem(uri)
    if _is_local(fs):
        os.makedirs(posixpath.dirname(path) or ".", exist_ok=True)
        tmp = _temporary_path(path)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
    return _create_s3_exclusive(fs, path, data)


def _create_s3_exclusive(fs, path: str, data: bytes) -> bool:
    """One conditional PUT (never a multipart upload: RGW's CompleteMultipartUpload ignores If-None-Match).
    A 412 is recognised by its status, whatever the body says (RGW sends no <Condition>)."""
    from posecluster.storage.retry import http_status

    bucket, key, _ = fs.split_path(path)
    try:
        fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        return True
    except (FileExistsError, OSError) as exc:
        if isinstance(exc, FileExistsError) or http_status(exc) == 412:
            return False
        raise


_conditional_create_checked: set[tuple[str, str]] = set()  # (endpoint, bucket) that passed, per process


def check_conditional_create(prefix: str) -> None:
    """Check, once per process and bucket, that the store refuses a second exclusive create of one key
    (PUT If-None-Match: *): exclusive claims rely on it, and a server that ignores the condition would let
    two writers both win, found out only as lost work. A store that fails the check stops the job at its
    start with a StorageError that says so. Local folders always pass (a hard link cannot replace a file)."""
    fs, path = filesystem(prefix)
    if _is_local(fs):
        return
    bucket = fs.split_path(path)[0] if hasattr(fs, "split_path") else path.split("/", 1)[0]
    # The store is what the filesystem's options and the environment's endpoint make of it.
    store = (type(fs).__name__, repr(sorted(fs.storage_options.items(), key=str)), os.environ.get("AWS_ENDPOINT_URL", ""))
    if (store, bucket) in _conditional_create_checked:
        return
    probe = join(prefix, f".posecluster-probe-{uuid.uuid4().hex}")
    try:
        first, second = create_exclusive(probe, b"1"), create_exclusive(probe, b"2")
        kept = read_bytes(probe) if first else b""
    except StorageError as exc:
        from posecluster.storage.retry import http_status

        if http_status(exc) not in (400, 501):
            raise
        first, second, kept = False, False, b""  # NotImplemented: the server does not know If-None-Match
    finally:
        with contextlib.suppress(FileNotFoundError, StorageError):
            remove(probe)  # a bucket that keeps versions or locks objects keeps the probe: no reason to stop
    if not first or second or kept != b"1":
        raise StorageError(f"{redact_uri(prefix)}: this storage server does not honour conditional creates "
                           "(PUT with If-None-Match: *): a second create of one key "
                           f"{'was accepted' if second else 'did not behave as a create'}. posecluster needs them "
                           "for exclusive claims; upgrade the server or ask its administrator (Ceph RGW >= 16, "
                           "MinIO >= 2024, AWS S3 have them)")
    _conditional_create_checked.add((store, bucket))


def atomic_upload(local_file: str, uri: str) -> None:
    """Move a finished local file to `uri` atomically (rename locally; single PUT/multipart remotely)."""
    _check(uri, "write")
    with _operation("upload", uri):
        _upload(local_file, uri)


def _upload(local_file: str, uri: str) -> None:
    fs, path = filesystem(uri)
    if _is_local(fs):
        def copy(dst) -> None:
            with open(local_file, "rb") as src:
                while chunk := src.read(1 << 22):
                    dst.write(chunk)

        _publish_local(path, copy)
    else:
        fs.put_file(local_file, path)


@contextlib.contextmanager
def scratch_dir() -> Iterator[str]:
    """A private local folder for files that are built before being uploaded whole."""
    with tempfile.TemporaryDirectory(prefix="posecluster-") as tmp, _scope().also_allowing(tmp):
        yield tmp  # this process's own folder: within any job's scope


def local_path(uri: str) -> str | None:
    """The local filesystem path of `uri`, or None when it lives elsewhere."""
    fs, path = filesystem(uri)
    return path if _is_local(fs) else None


def resolved_local_path(uri: str) -> str | None:
    """A local URI's path with every symbolic link followed (where it really is), or None elsewhere."""
    if _protocol(uri) != "file":
        return None  # decided from the URI alone: no filesystem is touched for object stores
    path = local_path(uri)
    return os.path.realpath(path) if path is not None else None


def same_local_file(first: str, second: str) -> bool | None:
    """Whether two local URIs are one file (the same device and inode: through a symbolic link, a bind
    mount, a hard link); False when either is gone; None when either is not local."""
    if _protocol(first) != "file" or _protocol(second) != "file":
        return None
    _check(first, "read")
    _check(second, "read")
    try:
        return os.path.samefile(local_path(first), local_path(second))
    except OSError:
        return False


def arrow_filesystem(uri: str):
    """(pyarrow filesystem, path) for libraries that take pyarrow filesystems (Ray Train's storage),
    built from the same fsspec filesystem and options as everything else."""
    _check(uri, "write")
    from pyarrow.fs import PyFileSystem

    fs, path = filesystem(uri)
    return PyFileSystem(_confined_handler(fs)), path


def _confined_handler(fs):
    """pyarrow's handler over `fs` with every call held to the job's scope, as the seam's own functions
    are: Ray Train writes and reads checkpoints through it (a link planted in the run folder must not
    carry them into another lab's folder)."""
    from pyarrow.fs import FSSpecHandler

    def uri_of(path: str) -> str:
        return path if _is_local(fs) else fs.unstrip_protocol(path)

    class ConfinedHandler(FSSpecHandler):
        def get_file_info(self, paths):
            for path in paths:
                _check(uri_of(path), "read")
            return super().get_file_info(paths)

        def get_file_info_selector(self, selector):
            _check(uri_of(selector.base_dir), "list")
            infos = super().get_file_info_selector(selector)
            for info in infos:
                _check(uri_of(info.path), "list")
            return infos

        def delete_root_dir_contents(self):
            _check("/" if _is_local(fs) else f"{fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]}://",
                   "write")  # the whole filesystem: never inside a lab's scope
            return super().delete_root_dir_contents()

    def guarded(name: str, operation: str, arguments: int = 1):
        method = getattr(FSSpecHandler, name)

        def call(self, *args):
            for path in args[:arguments]:
                _check(uri_of(path), operation)
            return method(self, *args)

        setattr(ConfinedHandler, name, call)

    for name in ("open_input_stream", "open_input_file"):
        guarded(name, "read")
    for name in ("create_dir", "delete_dir", "delete_dir_contents", "delete_file", "open_output_stream",
                 "open_append_stream"):
        guarded(name, "write")
    guarded("move", "write", arguments=2)
    guarded("copy_file", "write", arguments=2)
    return ConfinedHandler(fs)


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local path holding the object's bytes (the file itself when it is already local)."""
    _check(uri, "read")
    path = local_path(uri)
    if path is not None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{uri}: no such object")
        yield path
        return
    with scratch_dir() as tmp:
        target = os.path.join(tmp, basename(uri) or "object")
        with _operation("download", uri):
            fs, remote = filesystem(uri)
            try:
                fs.get_file(remote, target)
            except FileNotFoundError:
                raise FileNotFoundError(f"{uri}: no such object") from None
        yield target


def _scope():
    from posecluster.storage import scope  # the job's scope (storage/scope.py imports this module)

    return scope


def _check(uri: str, operation: str) -> None:
    """Every public read, list and write passes here first: the job's scope (storage/scope.py)."""
    _scope().check(uri, operation)


def _listed(prefix: str, uris: list[str]) -> list[str]:
    """A listing's entries, each within the job's scope (a local link may lead out of it)."""
    _scope().check_listed(uris, prefix)
    return uris
