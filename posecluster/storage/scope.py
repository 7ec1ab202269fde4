"""A job's scope: the storage prefixes it may read, list and write, checked at the one storage seam.

A job started for a lab runs with that lab's prefixes (`posecluster --confine PREFIX ... COMMAND`, the web
app's launcher, or `confined(Scope.of([...]))` around an api call). Every public storage function calls
`check()` before it touches anything, so a location a job was never given directly (a line of a `.txt`
list, `project_uri` inside `model.pt`, an `ensemble.json` member, a `config.yaml` entry, a done record) is
refused there too. Code that takes a location out of a file calls `check(location, ..., named_by=file)`
first, so that the refusal also names the file that pointed there.

- Local paths are resolved with every symbolic link followed (os.path.realpath) before the comparison: a
  link inside the scope that leads out of it is refused for reads and writes alike; so is `..`.
- Object-store keys must be normal (no `.`, `..` or empty segments) and lie under a prefix at a `/`
  boundary (`s3://bucket/a` covers `s3://bucket/a/x`, never `s3://bucket/ab`).
- No scope installed means unconfined (a person's own command line, the tests); the web app's jobs always
  carry one.

The scope lives in a ContextVar holding an immutable Scope: installed at the edges (the CLI's entry, each
Ray task's and actor's entry, which receive it with their arguments: cluster/runtime.py), inherited by
threads that posecluster starts (`in_context`). No process-global setting: two jobs in one process (the
tests, a library user) each see their own scope.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from posecluster.storage import StorageError, canonical_uri, redact_uri

__all__ = ["OutOfScopeError", "Scope", "check", "check_listed", "confined", "current", "in_context", "install",
           "start_thread"]


class OutOfScopeError(StorageError):
    """A location outside the job's scope. Permanent; names the location, the file that named it (where
    known) and the scope. Picklable with its fields (it crosses Ray's process boundaries)."""

    def __init__(self, message: str, location: str = "", named_by: str = "", scope: tuple[str, ...] = ()):
        super().__init__(message, transient=False)
        self.location, self.named_by, self.scope = location, named_by, tuple(scope)

    def __reduce__(self):
        return (type(self), (str(self.args[0]), self.location, self.named_by, self.scope))


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.split("://", 1)[0].lower() == "file"


def _local_real(uri: str) -> str:
    """A local location as it really is: absolute, `..` resolved, every symbolic link followed (also in
    the folders of a file that does not exist yet: where a write would land)."""
    return os.path.realpath(os.path.expanduser(canonical_uri(uri)))


def _normal_key(uri: str) -> bool:
    rest = canonical_uri(uri).split("://", 1)[1].rstrip("/")
    return all(part not in ("", ".", "..") for part in rest.split("/"))


def _normalise_prefix(prefix: str) -> str:
    text = str(prefix).strip()
    if not text:
        raise ValueError("a scope prefix must not be empty")
    if _is_local(text):
        return _local_real(text)
    if not _normal_key(text):
        raise ValueError(f"scope prefix {redact_uri(text)!r}: '.', '..' and empty segments are not allowed")
    return canonical_uri(text).rstrip("/")


def _under(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix.rstrip("/") + "/")


@dataclass(frozen=True)
class Scope:
    """The prefixes (normalised: local ones as real absolute paths) a job may touch."""

    prefixes: tuple[str, ...]
    # Folders of the server's own that a job may read but never write (the torch hub's ImageNet files).
    readable: tuple[str, ...] = ()

    @classmethod
    def of(cls, prefixes: Iterable[str]) -> "Scope":
        normal = tuple(dict.fromkeys(_normalise_prefix(p) for p in prefixes))
        if not normal:
            raise ValueError("a scope needs at least one prefix")
        return cls(normal)

    def with_prefix(self, prefix: str) -> "Scope":
        return Scope(self.prefixes + (_normalise_prefix(prefix),), self.readable)

    def with_readable(self, prefix: str) -> "Scope":
        return Scope(self.prefixes, self.readable + (_normalise_prefix(prefix),))

    def refusal_for(self, uri: str, operation: str) -> str | None:
        """refusal(uri), except that reads and listings of a `readable` folder are allowed."""
        if operation in ("read", "list") and self.readable and Scope(self.readable).refusal(uri) is None:
            return None
        return self.refusal(uri)

    def refusal(self, uri: str) -> str | None:
        """None when `uri` lies in the scope, else why not (for the message)."""
        if _is_local(uri):
            local = [p for p in self.prefixes if p.startswith("/")]
            if any(_under(_local_real(uri), p) for p in local):
                return None
            plain = os.path.abspath(os.path.expanduser(canonical_uri(uri)))
            if plain != _local_real(uri) and any(_under(plain, p) for p in local):
                return "through a symbolic link that leads out of it"
            return ""
        if not _normal_key(uri):
            return "not a normal key: '.', '..' or empty segments"
        target = canonical_uri(uri).rstrip("/")
        return None if any(_under(target, p) for p in self.prefixes if "://" in p) else ""

    def allows(self, uri: str) -> bool:
        return self.refusal(uri) is None

    def describe(self) -> str:
        return ", ".join(redact_uri(p) for p in self.prefixes)


_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("posecluster_scope", default=None)


def current() -> Scope | None:
    """The scope of the work running here (None: unconfined)."""
    return _current.get()


def check(uri: str, operation: str, named_by: str | None = None) -> None:
    """Refuse (OutOfScopeError) a location outside the current scope; nothing happens when unconfined.
    `operation`: read, list or write; `named_by`: the file the location was found in, where known."""
    scope = _current.get()
    reason = None if scope is None else scope.refusal_for(uri, operation)
    if reason is None:
        return
    reason = f" ({reason})" if reason else ""
    named = f", named in {redact_uri(named_by)}" if named_by else ""
    raise OutOfScopeError(
        f"{redact_uri(uri)}: outside this job's scope{reason}{named}; refused to {operation} it "
        f"(the job may touch only {scope.describe()})",
        location=redact_uri(uri), named_by=redact_uri(named_by or ""), scope=scope.prefixes)


def check_listed(uris: Iterable[str], prefix: str) -> None:
    """The entries of a local listing under `prefix`: one reached through a link that leads out of the
    scope is refused (naming the listed folder), so another lab's file names are not handed on either.
    Object-store entries are checked too: a listing by name prefix (list_named) can reach keys beside the
    scope's own folder (`s3://b/smith` lists `s3://b/smithX...`)."""
    if _current.get() is None:
        return
    for uri in uris:
        check(uri, "list", named_by=prefix)


@contextlib.contextmanager
def confined(scope: Scope | None) -> Iterator[Scope | None]:
    """Run the block under `scope` (None: leave the current scope as it is)."""
    if scope is None:
        yield _current.get()
        return
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def install(scope: Scope | None) -> None:
    """Set the scope for the rest of this context: the entry of a Ray task or actor method, which owns its
    context for the call and carries the scope it was sent with (None: unconfined), never an older one."""
    _current.set(scope)


def also_reading(prefix: str) -> contextlib.AbstractContextManager:
    """Let the current scope (if any) read, never write, a folder of the server's own (not a lab's data)."""
    scope = _current.get()
    return confined(scope.with_readable(prefix) if scope is not None else None)


def also_allowing(prefix: str) -> contextlib.AbstractContextManager:
    """Widen the current scope (if any) by a folder this process made itself (a private scratch folder)."""
    scope = _current.get()
    return confined(scope.with_prefix(prefix) if scope is not None else None)


def in_context(function: Callable) -> Callable:
    """`function` bound to a copy of the current context (its scope): for threads and pools, which do not
    inherit context variables by themselves."""
    context = contextvars.copy_context()  # a fresh copy per call: a pool runs calls at once
    return lambda *args, **kwargs: context.copy().run(function, *args, **kwargs)


def start_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """A daemon thread that runs `target` under the scope of the code that starts it."""
    thread = threading.Thread(target=in_context(target), name=name, daemon=True)
    thread.start()
    return thread
