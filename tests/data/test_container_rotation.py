"""The MP4/MOV and Matroska header walks give the rotation PyAV reports on decoded frames (the oracle),
without decoding."""

from __future__ import annotations

import av
import numpy as np
import pytest

from posecluster.data import video as video_module
from posecluster.data.container_rotation import matroska_video_rotation, mp4_track_rotation
from posecluster.data.video import probe
from tests.data.video_matrix import display_rotation


def encode(path, rotation: float | None, frames: int = 3) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decoded_rotation(path) -> int:
    with av.open(str(path)) as container:
        return display_rotation(next(container.decode(video=0)))


WALKS = {".mp4": mp4_track_rotation, ".mov": mp4_track_rotation,
         ".mkv": lambda handle, track_id: matroska_video_rotation(handle)}


@pytest.mark.parametrize("suffix", list(WALKS))
@pytest.mark.parametrize("rotation", [None, 90.0, 180.0, 270.0, -90.0])
def test_the_header_rotation_equals_the_rotation_on_decoded_frames(tmp_path, suffix, rotation):
    path = tmp_path / f"clip{suffix}"
    encode(path, rotation)
    with open(path, "rb") as handle, av.open(str(path)) as container:
        found = WALKS[suffix](handle, container.streams.video[0].id)
    assert found == decoded_rotation(path)
    info = probe(str(path))
    assert info.rotation == found and (info.width, info.height) == ((48, 64) if found in (90, 270) else (64, 48))


def test_probing_decodes_nothing_and_a_damaged_header_falls_back_to_a_decoded_frame(tmp_path, monkeypatch):
    decoded = []
    real = video_module._first_frame
    monkeypatch.setattr(video_module, "_first_frame", lambda *a: decoded.append(1) or real(*a))
    for suffix in WALKS:
        encode(tmp_path / f"rotated{suffix}", 90.0)
        assert probe(str(tmp_path / f"rotated{suffix}")).rotation == 90
    assert not decoded
    path = tmp_path / "rotated.mp4"
    data = bytearray(path.read_bytes())
    tkhd = data.index(b"tkhd")
    data[tkhd + 4] = 2  # a tkhd version this walk does not know (FFmpeg reads it as version 0)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with open(damaged, "rb") as handle:
        assert mp4_track_rotation(handle, 1) is None
    assert probe(str(damaged)).rotation == decoded_rotation(path) == 90 and decoded  # from the frame instead


def test_a_matroska_pose_that_is_not_a_plain_rotation_is_left_to_the_decoder(tmp_path):
    path = tmp_path / "rotated.mkv"
    encode(path, 90.0)
    data = bytearray(path.read_bytes())
    roll = data.index(bytes([0x76, 0x75]))
    data[roll : roll + 2] = bytes([0x76, 0x73])  # the same angle as a yaw: a 3-D pose, not a rotation
    (tmp_path / "yawed.mkv").write_bytes(bytes(data))
    with open(tmp_path / "yawed.mkv", "rb") as handle:
        assert matroska_video_rotation(handle) is None
