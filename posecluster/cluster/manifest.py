"""The archive job's manifest: append-only JSON-lines chunks of per-video records plus a small summary.

Layout under the output URI:
  .posecluster/jobs/<job id>/records/<seq>.jsonl   one object per flush, holding only the videos that
                                                   reached an outcome since the last flush
  .posecluster/jobs/<job id>/summary.json          counts, timings, the first failures (a few kB at most)
  posecluster-manifest.json                        the latest job's summary as of its start and its end
                                                   (`status` follows it to the job's current summary)

Nothing is ever rewritten in full, so what a job writes stays O(its videos) in total, and a reader (the
`posecluster status` command, the web app) reads the summary and then streams the chunks one at a
time; a 100,000-video job is never loaded whole. Readers on other machines see the job as of its last
flush (every 10 s while it runs).

Per-video record statuses: done, done-with-warnings (frames the decoder could not produce, listed as
ranges), skipped (done by an earlier job for the same request), failed (with the error text).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from typing import Iterator

from posecluster import storage
from posecluster.storage.listing import list_identities
from posecluster.storage.retry import call as with_retries, is_transient

log = logging.getLogger(__name__)
STATE = ".posecluster"
LATEST = "posecluster-manifest.json"
SUMMARY_FAILURES = 20  # failures the summary carries; the rest are in the records
STATUSES = ("done", "done-with-warnings", "skipped", "failed")


def job_folder(out: str, job_id: str) -> str:
    return storage.join(out, STATE, "jobs", job_id)


class ManifestWriter:
    """Buffers per-video records; `flush` appends them as one chunk and rewrites the small summary.

    A flush that meets a storage outage keeps its records for the next one: the manifest never stops
    the job, and nothing is lost while storage is away.
    """

    def __init__(self, out: str, job_id: str, interval_s: float = 10.0):
        self.out, self.job_id, self.interval_s = out, job_id, interval_s
        self.folder = job_folder(out, job_id)
        self.summary_uri = storage.join(self.folder, "summary.json")
        self.latest_uri = storage.join(out, LATEST)
        self._pending: list[dict] = []
        self._chunks = 0
        self._last = 0.0
        self.bytes_written = 0
        self.requests = 0

    def add(self, record: dict) -> None:
        self._pending.append(record)

    def due(self) -> bool:
        return time.time() - self._last >= self.interval_s

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self, summary: dict, force: bool = False, patience_s: float = 0.0) -> bool:
        """Append the buffered records as a chunk and rewrite the summary (when due, or `force`): False
        when storage is away (the records stay buffered for the next flush; nothing is lost)."""
        if not force and not self.due():
            return True
        self._last = time.time()
        try:
            if self._pending:
                body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in self._pending).encode()
                uri = storage.join(self.folder, "records", f"{self._chunks:06d}.jsonl")
                with_retries(storage.atomic_write_bytes, uri, body, patience_s=patience_s)
                self._count(body)
                self._chunks += 1
                self._pending = []
            text = json.dumps({**summary, "chunks": self._chunks}, indent=1, default=str).encode()
            # The latest-job pointer is written at the job's start and end only: readers follow it to
            # the job's own summary, which every flush updates.
            for uri in (self.summary_uri, self.latest_uri) if force else (self.summary_uri,):
                with_retries(storage.atomic_write_bytes, uri, text, patience_s=patience_s)
                self._count(text)
            return True
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("manifest not written (storage unavailable: %s); will retry", type(exc).__name__)
            return False

    def _count(self, body: bytes) -> None:
        self.bytes_written += len(body)
        self.requests += 1


def read_summary(out: str, job: str | None = None) -> dict:
    """The current summary of job `job`, or of the latest job started under `out`."""
    uri = storage.join(out, LATEST)
    try:
        if job is None:
            job = json.loads(storage.read_bytes(uri))["job_id"]
        uri = storage.join(job_folder(out, job), "summary.json")
        return json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        what = f"job {job}" if job else "any archive job"
        raise FileNotFoundError(f"{out}: no manifest of {what} ({uri})") from None


def iter_records(out: str, job: str) -> Iterator[dict]:
    """Every per-video record of a job, streamed chunk by chunk (in the order they were written)."""
    for chunk in list_identities(storage.join(job_folder(out, job), "records"), (".jsonl",)):
        for number, line in enumerate(storage.read_bytes(chunk.uri).decode(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                yield record
            else:  # a stored file is data, never trusted: one bad line is one broken record, not a broken job
                yield {"uri": "", "status": "unreadable", "error": f"{chunk.uri.rsplit('/', 1)[-1]}, line {number}: "
                       "not a record"}


def list_jobs(out: str) -> list[str]:
    """Job ids under `out`, oldest first (ids start with their start time)."""
    summaries = list_identities(storage.join(out, STATE, "jobs"), ("/summary.json",))
    return sorted(s.uri.rsplit("/", 2)[-2] for s in summaries)


def find_jobs(root: str) -> list[tuple[str, str]]:
    """(output URI, job id) of every job anywhere under `root`, newest first, from ONE listing of `root`
    (a web app over a whole bucket does not know where the jobs' outputs are)."""
    marker = f"/{STATE}/jobs/"
    found = []
    for summary in list_identities(root, ("/summary.json",)):
        out, sep, rest = summary.uri.rpartition(marker)
        if sep and rest.count("/") == 1:  # exactly <out>/.posecluster/jobs/<job>/summary.json
            found.append((out, rest.split("/", 1)[0]))
    return sorted(found, key=lambda job: job[1], reverse=True)  # ids start with their start time


def read_records(out: str, job: str, status: str | None = None, offset: int = 0, limit: int = 100) -> list[dict]:
    """One page of a job's per-video records (in the order they finished), of one status when `status`
    is given: the chunks are streamed and reading stops once the page is full."""
    records = iter_records(out, job)
    if status:
        records = (r for r in records if r.get("status") == status)
    return list(itertools.islice(records, offset, offset + limit))


def job_status(out: str, job: str | None = None, failures: int = 20) -> dict:
    """A job's summary plus up to `failures` failed videos and up to as many with missing frames, read
    from the records without holding them all."""
    summary = read_summary(out, job)
    failed, warned = [], []
    if failures:
        for record in iter_records(out, summary["job_id"]):
            if record["status"] == "failed" and len(failed) < failures:
                failed.append(record)
            elif record["status"] == "done-with-warnings" and len(warned) < failures:
                warned.append(record)
            if len(failed) >= failures and len(warned) >= failures:
                break
    return {**summary, "failed_videos": failed, "videos_with_warnings": warned}


def format_status(status: dict) -> list[str]:
    """Lines for a person: progress, rates, and what failed and why."""
    counts = status.get("counts", {})
    total = status.get("videos_total", 0)
    finished = sum(counts.get(s, 0) for s in STATUSES)
    lines = [
        f"job {status['job_id']} ({status['status']}) under {status['out']}",
        f"  model {status['model']['uri']} (sha256 {status['model']['sha256'][:16]}...)",
        f"  videos: {finished} of {total} finished: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES),
        f"  frames computed: {status.get('frames_computed', 0)} in {status.get('seconds', 0):.0f} s "
        f"({status.get('fps', 0):.1f} frames/s); segments: {status.get('segments_computed', 0)} computed, "
        f"{status.get('segments_cached', 0)} cached; workers: {status.get('workers', 0)}",
    ]
    for reason, videos in sorted(status.get("recomputed", {}).items()):
        lines.append(f"  recomputed ({reason}): {videos} videos")
    if status.get("stop_reason"):
        lines.append(f"  STOPPED: {status['stop_reason']}")
    if status.get("first_table_s") is not None:
        lines.append(f"  first table after {status['first_table_s']:.1f} s")
    for record in status.get("failed_videos", []):
        lines.append(f"  FAILED {record['uri']}: {record.get('error', '')}")
    for record in status.get("videos_with_warnings", []):
        lines.append(f"  MISSING FRAMES {record['uri']}: {record.get('missing', '')}")
    return lines
