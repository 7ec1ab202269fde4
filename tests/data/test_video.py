"""PyAV streaming from storage: exact frame ranges after seeking, and clear errors for bad objects."""

from __future__ import annotations

import av
import numpy as np
import pytest

from posecluster import storage
from posecluster.data import synthetic
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.errors import InputError


def sequential_frames(uri: str, wanted: set[int]) -> dict[int, np.ndarray]:
    out = {}
    with av.open(uri) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                out[index] = frame.to_ndarray(format="rgb24")
            if index >= max(wanted):
                break
    return out


def test_probe_reads_openfield_counts_without_decoding(openfield_video):
    info = probe(openfield_video)
    assert info.frame_count == 2330
    assert (info.width, info.height) == (640, 480)
    assert info.fps == pytest.approx(30.0, abs=0.01)
    assert info.keyframes[0] == 0 and len(info.keyframes) > 5


def test_frames_after_a_seek_equal_sequential_decoding(openfield_video):
    # openfield is x264 High 4:4:4: decoding from a later IDR needs the first packet's SEI (see video.py).
    info = probe(openfield_video)
    wanted = {1000, 1001, 1172, 1173, 2329}
    reference = sequential_frames(openfield_video, wanted)
    for start in (1000, 1172, 2329):
        report = DecodeReport()
        for index, frame in read_frames(info, start, start + 2 if start < 2329 else 2330, report):
            if index in reference:
                np.testing.assert_array_equal(frame, reference[index])
        assert not report.missing


def test_streaming_from_s3_gives_the_same_frames_as_disk(tmp_path, s3_bucket):
    local = str(tmp_path / "clip.mp4")
    synthetic.render_video(local, synthetic.Scene(width=64, height=48, seed=5), 40)
    remote = f"{s3_bucket}/videos/clip.mp4"
    storage.atomic_upload(local, remote)
    a, b = probe(local), probe(remote)
    assert a.frame_count == b.frame_count == 40
    local_frames = list(read_frames(a, 10, 30, DecodeReport()))
    remote_frames = list(read_frames(b, 10, 30, DecodeReport()))
    assert [i for i, _ in local_frames] == list(range(10, 30))
    for (i, x), (j, y) in zip(local_frames, remote_frames):
        assert i == j
        np.testing.assert_array_equal(x, y)


def test_a_non_video_object_is_an_input_error_naming_it(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_bytes(b"definitely not a video" * 50)
    with pytest.raises(InputError, match="notes.mp4: not a readable video"):
        probe(str(path))


def test_a_truncated_video_is_probed_with_a_warning_not_refused(tmp_path):
    full = tmp_path / "full.mp4"
    synthetic.render_video(str(full), synthetic.Scene(width=64, height=48, seed=2), 60)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    info = probe(str(cut))
    assert info.frame_count == 60 and 0 < info.present < 60
    assert any("truncated: the container declares 60 frames" in w for w in info.warnings)
