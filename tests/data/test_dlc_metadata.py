"""DeepLabCut's _meta.pickle as posecluster writes it: the keys DLC's create_labeled_video reads, named
where DLC looks, and a pickle of plain data that calls no code when loaded."""

from __future__ import annotations

import pickle
import pickletools

from posecluster.data.formats.dlc_metadata import metadata_uri, video_metadata, write_video_metadata

CALLS_CODE = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE", "BUILD"}


def test_metadata_pickle_has_dlcs_keys_and_only_plain_data(tmp_path):
    table = str(tmp_path / "arena0DLC_resnet50_xJan1shuffle1_snapshot_000_el.h5")
    uri = metadata_uri(table)
    assert uri == str(tmp_path / "arena0DLC_resnet50_xJan1shuffle1_snapshot_000_meta.pickle")
    assert metadata_uri(table.replace("_el.h5", "_el_filtered.h5")) == uri
    write_video_metadata(uri, video_metadata("DLC_x", 30, 128, 96, 60, ["m1", "m2"], ["a"], []))
    raw = open(uri, "rb").read()
    assert not CALLS_CODE & {op.name for op, _, _ in pickletools.genops(raw)}
    data = pickle.loads(raw)["data"]
    assert data["cropping"] is False and data["cropping_parameters"] == [0, 128, 0, 96]
    assert data["nframes"] == 60 and data["frame_dimensions"] == (128, 96) and data["individuals"] == ["m1", "m2"]
