"""Every .h5 posecluster writes has the HDF5 layout and group attributes of the files DeepLabCut 3.0.2's own
pandas (2.3.3) wrote (../shared/data/dlc-reference), read with PyTables, not through pandas 3; and a user's
.h5 whose reading would unpickle code is refused before pandas touches it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tables

from posecluster.data.formats import dlc
from posecluster.data.formats.poses import PoseTableWriter, read_track, write_track
from posecluster.data.labels import LabeledDataset
from posecluster.data.tracks import PoseTrack
from posecluster.errors import InputError

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "dlc-reference"
POSES_REF = "m3v1mp4DLC_resnet50_openfieldOct30shuffle1_snapshot_200.h5"
LABELS_REF = "CollectedData_Pranav_df_with_missing.h5"
PARTS = ["snout", "leftear", "rightear", "tailbase"]


@pytest.fixture(scope="module")
def reference() -> Path:
    if not (REFERENCE / POSES_REF).exists():
        pytest.skip(f"DeepLabCut's reference files are not at {REFERENCE} (../shared beside the checkout)")
    return REFERENCE


def _layout(path, key: str = "df_with_missing") -> dict:
    """What pandas 2 looks at: the store group's attributes, and each child node's class and data kind."""
    with tables.open_file(str(path)) as handle:
        group = handle.get_node(f"/{key}")
        attrs = {name: group._v_attrs[name] for name in group._v_attrs._f_list("user")}
        nodes = {}
        for node in handle.list_nodes(group):
            if isinstance(node, tables.Table):
                nodes[node._v_name] = ("Table", tuple((n, node.coldtypes[n].kind) for n in node.colnames))
            else:
                nodes[node._v_name] = (type(node).__name__, node.atom.kind)
    return {"attrs": attrs, "nodes": nodes}


def _assert_like_reference(ours: dict, ref: dict, compare_nodes: bool = True) -> None:
    missing = set(ref["attrs"]) - set(ours["attrs"])
    if not compare_nodes:  # a one-level row index has no axis1 level count
        missing.discard("axis1_nlevels")
    assert not missing, f"group attributes pandas 2 reads are missing: {sorted(missing)}"
    for name in ("pandas_version", "pandas_type", "table_type", "encoding", "errors"):
        if name in ref["attrs"]:
            assert str(ours["attrs"][name]) == str(ref["attrs"][name]), name
    if compare_nodes:
        assert ours["nodes"] == ref["nodes"]


def _poses(n=12, parts=PARTS):
    rng = np.random.default_rng(0)
    poses = rng.uniform(0, 100, size=(n, len(parts), 3))
    poses[3, 1] = np.nan
    return poses


def test_pose_tables_have_deeplabcuts_hdf5_layout(reference, tmp_path):
    writer = PoseTableWriter("DLC_resnet50_testOct30shuffle1_snapshot_200", PARTS, str(tmp_path))
    writer.append(0, _poses())
    published = writer.publish(str(tmp_path / "out" / "videoDLC"))
    writer.close()
    _assert_like_reference(_layout(published["h5"]), _layout(reference / POSES_REF))


def test_filtered_tables_have_deeplabcuts_hdf5_layout(reference, tmp_path):
    uri = str(tmp_path / "videoDLC_filtered.h5")
    write_track(PoseTrack("DLC_x", PARTS, _poses()), uri)
    _assert_like_reference(_layout(uri), _layout(reference / POSES_REF))


def _labels(root: str, style: str) -> LabeledDataset:
    images = [f"labeled-data/mouse/img{i:03d}.png" for i in range(5)]
    keypoints = _poses(5)[..., :2]
    return LabeledDataset(root=root, scorer="Pranav", bodyparts=PARTS, images=images, keypoints=keypoints,
                          index_styles={"labeled-data/mouse": style})


def test_tuple_indexed_label_tables_have_deeplabcuts_hdf5_layout(reference, tmp_path):
    written = dlc.write_tables(_labels(str(tmp_path), "tuple"))
    h5 = next(uri for uri in written if uri.endswith(".h5"))
    _assert_like_reference(_layout(h5), _layout(reference / LABELS_REF))


def test_path_indexed_label_tables_carry_the_attributes_pandas2_reads(reference, tmp_path):
    # DeepLabCut writes labels in the fixed format; a one-level index has fewer index nodes than the reference.
    written = dlc.write_tables(_labels(str(tmp_path), "path"))
    h5 = next(uri for uri in written if uri.endswith(".h5"))
    ours, ref = _layout(h5), _layout(reference / LABELS_REF)
    _assert_like_reference(ours, ref, compare_nodes=False)
    assert ours["nodes"]["block0_values"] == ref["nodes"]["block0_values"]


def test_machinelabels_have_deeplabcuts_hdf5_layout(reference, tmp_path):
    from posecluster.data.formats.poses import pose_frame, read_pose_table
    from posecluster.labeling.outliers import add_machine_labels

    folder = "labeled-data/mouse"
    names = [f"{folder}/img{i:03d}.png" for i in (2, 5)]
    track = PoseTrack("DLC_x", PARTS, _poses())
    machine = pose_frame(track.scorer, list(track.bodyparts), 0, track.poses[[2, 5]])
    add_machine_labels(str(tmp_path), folder, 0, machine, names, read_pose_table)
    ours = _layout(tmp_path / folder / "machinelabels-iter0.h5")
    _assert_like_reference(ours, _layout(reference / LABELS_REF), compare_nodes=False)


class _CreatesMarker:
    """Unpickling this opens (creates) the marker file: what a crafted table could do on a worker."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def test_label_table_with_pickled_objects_is_refused_unread(tmp_path):
    marker = tmp_path / "pwned"
    columns = pd.MultiIndex.from_product([["Pranav"], ["snout"], ["x", "y"]], names=dlc.LEVELS)
    frame = pd.DataFrame([[_CreatesMarker(str(marker)), 1.0]], index=["labeled-data/v/img0.png"], columns=columns,
                         dtype=object)
    table = tmp_path / "CollectedData_Pranav.h5"
    with pytest.warns(Warning):  # pandas warns that it pickles object columns
        frame.to_hdf(table, key="df_with_missing", format="fixed")
    with pytest.raises(InputError, match="CollectedData_Pranav.h5.*pickled"):
        dlc.read_table(str(table))
    assert not marker.exists()


def test_pose_table_with_a_code_running_attribute_is_refused_unread(tmp_path):
    import pickle

    import h5py

    marker = tmp_path / "pwned"
    uri = str(tmp_path / "videoDLC.h5")
    write_track(PoseTrack("DLC_x", PARTS, _poses()), uri)
    with h5py.File(uri, "r+") as handle:  # pandas reads `info` back through PyTables, which unpickles it
        handle["df_with_missing"].attrs["info"] = np.bytes_(pickle.dumps(_CreatesMarker(str(marker)), 0))
    with pytest.raises(InputError, match="videoDLC.h5.*info"):
        read_track(uri)
    assert not marker.exists()
