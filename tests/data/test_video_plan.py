"""Planning from the container's index reads at most 1% of a long recording (counted through the file
object the reader reads from, and on S3 as the bytes the object store sends), and the plan it gives is the
one a full demux gives."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster import storage
from posecluster.data.video import PLAN_READS, DecodeReport, VideoInfo, VideoReader
from posecluster.storage.pinned import ReadAhead, open_pinned
from posecluster.storage.retry import open_retrying
from tests.data import video_matrix

FRAMES = 2400  # 80 s at 30 fps, about 12 MB: long enough that a fixed cost of opening a file is no excuse
CONTAINERS = {  # name -> (file name, render options, the plan its index gives)
    "mp4_moov_first": ("first.mp4", {}, "frames"),
    "mp4_moov_last": ("last.mp4", {"faststart": False}, "frames"),
    "mov": ("clip.mov", {}, "frames"),
    "avi_idx1": ("clip.avi", {"bframes": 0}, "frames"),
    "mkv_cues": ("clip.mkv", {}, "spans"),
    "avi_opendml": ("odml.avi", {"bframes": 0}, "frames"),
    "mkv_no_cues": ("live.mkv", {"seekable": False}, "sequential"),
}


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("long-videos")
    videos = {name: video_matrix.render_long(str(folder / file), FRAMES, **options)
              for name, (file, options, _) in CONTAINERS.items() if name != "avi_opendml"}
    videos["avi_opendml"] = video_matrix.opendml(videos["avi_idx1"], str(folder / "odml.avi"))
    return videos


class Counting:
    """A source that opens the video through the project's retrying reader and keeps it, to count bytes."""

    def __init__(self, uri: str, **reads):
        self.uri, self.reads, self.opened = uri, reads, []

    def __call__(self):
        handle = open_retrying(self.uri, **self.reads)
        self.opened.append(handle)
        return handle

    @property
    def bytes_read(self) -> int:
        return sum(handle.bytes_read for handle in self.opened)


@pytest.mark.parametrize("name", CONTAINERS)
def test_a_plan_reads_at_most_one_percent_of_a_long_video(name, long_videos):
    path = long_videos[name]
    size = storage.identity(path).size
    source = Counting(path)
    plan = VideoReader(path, source).plan()
    assert plan.plan == CONTAINERS[name][2]
    assert source.bytes_read <= 0.01 * size, f"{name}: planning read {source.bytes_read} of {size} bytes"
    if plan.plan == "frames":
        assert plan.frame_count == FRAMES and len(plan.keyframes) == FRAMES // 30
    elif plan.plan == "spans":
        assert plan.span_count == FRAMES // 30  # a cue per keyframe


def test_a_plan_from_s3_fetches_at_most_one_percent(long_videos, s3_bucket):
    """What the object store sends (fsspec's block fetches), not only what PyAV asks for."""
    uri = f"{s3_bucket}/videos/last.mp4"
    storage.atomic_upload(long_videos["mp4_moov_last"], uri)
    caches = []

    def source():
        handle = storage.open_uri(uri, "rb", **PLAN_READS)
        caches.append(handle.cache)  # closing the file drops it: keep it to read its count
        return handle

    plan = VideoReader(uri, source).plan()
    fetched = sum(cache.total_requested_bytes for cache in caches)
    assert plan.frame_count == FRAMES
    assert fetched <= 0.01 * storage.identity(uri).size, f"fetched {fetched} bytes"


@pytest.mark.parametrize("name", ["mp4_moov_first", "mp4_moov_last", "mov", "avi_idx1", "mkv_cues"])
def test_a_plan_from_pinned_storage_takes_at_most_two_requests(name, long_videos, s3_bucket):
    """How an archive job plans (cluster.plan: a pinned reader over S3): the head, then the index in one
    request, whether it comes first (an MP4's moov after ftyp) or last: a job's bill is at most 2 + segments
    (a head that holds the whole index makes it 1 + segments)."""
    uri = f"{s3_bucket}/videos/{name}"
    storage.atomic_upload(long_videos[name], uri)
    identity, readers = storage.identity(uri), []

    def source():
        readers.append(open_pinned(identity, ReadAhead.planning(identity.size), keep=16))
        return readers[-1]

    plan = VideoReader(uri, source).plan()
    assert plan.plan == CONTAINERS[name][2]
    assert len(readers) == 1 and readers[0].requests <= 2, (name, readers[0].requests)
    assert readers[0].bytes_read <= 0.01 * identity.size + (64 << 10)  # the first block: a fixed cost


@pytest.mark.parametrize("name", ["mp4_moov_last", "avi_idx1", "avi_opendml"])
def test_the_index_plan_equals_the_demux_probe(name, long_videos):
    reader = VideoReader(long_videos[name])
    plan, probed = reader.plan(), reader._demux_probe()
    assert (plan.frame_count, plan.numbering) == (probed.frame_count, probed.numbering)
    assert np.array_equal(plan.keyframes, probed.keyframes) and np.array_equal(plan.pts, probed.pts)
    assert np.array_equal(plan.seek_pos, probed.seek_pos) and np.array_equal(plan.seek_ts, probed.seek_ts)


def test_a_segment_of_a_long_video_reads_about_its_share(long_videos):
    """A worker decoding one segment reads its part of the media data, not the whole object."""
    path = long_videos["mp4_moov_last"]
    plan = VideoReader(path).plan()
    source = Counting(path)
    start, stop = int(plan.keyframes[40]), int(plan.keyframes[42])
    report = DecodeReport()
    assert [i for i, _ in VideoReader(path, source, plan).read(start, stop, report)] == list(range(start, stop))
    share = (stop - start) / plan.frame_count * storage.identity(path).size
    assert source.bytes_read < 3 * share + 256 * 1024, (source.bytes_read, share)


def test_a_matroska_without_cues_is_read_once_in_one_pass(long_videos):
    """No index: no probe either; one pass numbers every frame and reads each byte about once (FFmpeg
    would scan from the top for every segment's seek)."""
    path = long_videos["mkv_no_cues"]
    source = Counting(path)
    reader = VideoReader(path, source)
    report = DecodeReport()
    count = sum(1 for _ in reader.read_all(report))
    assert count == report.frame_count == reader.info.frame_count == FRAMES and not report.missing
    assert source.bytes_read <= 1.05 * storage.identity(path).size, source.bytes_read


class Watching:
    """A local file that notes each (offset, length) read from it."""

    def __init__(self, path: str, reads: list):
        self.handle, self.reads = open(path, "rb"), reads

    def read(self, size: int = -1) -> bytes:
        position = self.handle.tell()
        data = self.handle.read(size)
        self.reads.append((position, len(data)))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def close(self) -> None:
        self.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.mark.parametrize("name", ["mp4_moov_last", "avi_idx1", "mkv_cues"])
def test_a_segment_reads_media_data_only_never_the_index_again(name, long_videos):
    """The plan keeps what FFmpeg read to open the video (the index and the first packets); a segment,
    read on another worker from the shipped plan, reads from storage only from its keyframe on (a
    24-hour MP4's moov is tens of MB: read once per video, not once per segment)."""
    path = long_videos[name]
    reader = VideoReader(path)
    plan = VideoInfo.from_bytes(reader.plan().to_bytes(), path)  # as shipped to a worker
    reads: list = []
    worker = VideoReader(path, lambda: Watching(path, reads), plan)
    report = DecodeReport()
    if plan.plan == "frames":
        start, stop = int(plan.keyframes[40]), int(plan.keyframes[42])
        assert [i for i, _ in worker.read(start, stop, report)] == list(range(start, stop))
        first = int(plan.seek_pos[40])
    else:
        assert sum(1 for _ in worker.read_span(40, report)) == report.frame_count == 30
        first = int(plan.seek_pos[40])  # the cue's cluster
    size = storage.identity(path).size
    media = [(position, length) for position, length in reads if length]
    assert media and min(position for position, _ in media) >= first - 8  # an AVI chunk's header is 8 bytes
    read = sum(length for _, length in media)
    assert read <= 60 / FRAMES * size + 64 * 1024, (read, 60 / FRAMES * size)


def test_the_moov_box_is_found_from_the_head_of_an_mp4_only(long_videos):
    """Where an MP4's index lies, from its first bytes (what planning fetches first): moov's own box
    header, followed by the next top-level box; None for moov at the end and for other formats."""
    from posecluster.data.mp4_samples import moov_extent

    with open(long_videos["mp4_moov_first"], "rb") as handle:
        data = handle.read()
    start, stop = moov_extent(data[: 64 << 10])
    assert data[start + 4 : start + 8] == b"moov" and data[stop + 4 : stop + 8] in (b"mdat", b"free")
    assert int.from_bytes(data[start : start + 4], "big") == stop - start
    for name in ("mp4_moov_last", "mkv_cues", "avi_idx1"):
        with open(long_videos[name], "rb") as handle:
            assert moov_extent(handle.read(64 << 10)) is None, name
