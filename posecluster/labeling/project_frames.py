"""Frames written into a DeepLabCut project for labeling: PNGs in labeled-data/<video>/ plus rows in the
folder's CollectedData_<scorer> table (empty, or pre-filled with proposed labels), named as DLC names them
so DLC's labeling GUI, napari-deeplabcut and other DLC-compatible tools open them."""

from __future__ import annotations

import json

import numpy as np

from posecluster import storage
from posecluster.config import ProjectConfig
from posecluster.data.formats import dlc
from posecluster.data.images import write_png
from posecluster.data.labels import LabeledDataset
from posecluster.errors import InputError

SOURCE_FILE = "posecluster-source.json"


def labeled_folder(video_uri: str) -> str:
    return f"labeled-data/{storage.stem(video_uri)}"


def image_name(folder: str, index: int, frame_count: int) -> str:
    """DLC's name: img + the frame index zero-padded to the width of the video's frame count."""
    return f"{folder}/img{index:0{len(str(max(frame_count, 1)))}d}.png"


def claim_folder(project_uri: str, folder: str, video_uri: str) -> None:
    """labeled-data/<stem> belongs to one video; two videos with the same file name would mix frames.

    The claim is an exclusive create, so of two tasks extracting same-named videos at once exactly one
    wins, and the other fails here before it writes anything.
    """
    # The claim is only exclusive where the store honours conditional creates: checked once per bucket,
    # so a server without them stops the job here rather than letting two videos share one folder.
    storage.check_conditional_create(storage.join(project_uri, "labeled-data"))
    record = storage.join(project_uri, folder, SOURCE_FILE)
    if storage.create_exclusive(record, json.dumps({"video": video_uri}).encode()):
        return
    owner = json.loads(storage.read_bytes(record))["video"]
    if owner != video_uri:
        raise InputError(video_uri, f"{folder} already holds frames of {owner}; videos with the same file "
                                    "name need distinct names (rename or copy one) before extraction")


def rows_of_folder(table_uri: str, images: list[str], folder: str) -> None:
    """A folder's table lists that folder's frames only: a row naming another folder (or `..`) would make
    the next save write that folder's table, another lab's where paths climb out (InputError naming the
    table and the row)."""
    for row, image in enumerate(images):
        name = image[len(folder) + 1:] if image.startswith(folder + "/") else ""
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise InputError(table_uri, f"names {image!r}, not a frame of {folder}", row=row)


def folder_labels(project_uri: str, project: ProjectConfig, folder: str) -> LabeledDataset:
    """The folder's current table (h5, else csv), or an empty one."""
    for suffix in ("h5", "csv"):
        uri = dlc.table_uri(project_uri, folder, project.scorer, suffix)
        if storage.exists(uri):
            labels = dlc.table_to_dataset(dlc.read_table(uri), uri, project_uri, project.bodyparts)
            rows_of_folder(uri, labels.images, folder)
            return labels
    return LabeledDataset(root=project_uri, scorer=project.scorer, bodyparts=list(project.bodyparts), images=[],
                          keypoints=np.zeros((0, len(project.bodyparts), 2)), index_styles={folder: "path"})


def write_new_frames(project_uri: str, frames: dict[str, np.ndarray], known: list[str]) -> list[str]:
    """Write the images of `frames` ({relative image path: RGB}) that the folder's table does not list yet;
    returns their paths (a rerun never overwrites an image someone labels)."""
    listed = set(known)
    new = [name for name in frames if name not in listed]
    for name in new:
        write_png(storage.join(project_uri, name), frames[name])
    return new


def add_frames(project_uri: str, project: ProjectConfig, folder: str, frames: dict[str, np.ndarray],
               keypoints: np.ndarray | None = None) -> list[str]:
    """Write `frames` ({relative image path: RGB}) and give each a row in the folder's CollectedData table:
    NaN (to be labeled) or `keypoints` (n, K, 2) as initial labels. Rows that exist are left alone (a
    rerun never erases labeling work). Returns the image paths that were new."""
    current = folder_labels(project_uri, project, folder)
    new = write_new_frames(project_uri, frames, current.images)
    if not new:
        return []
    rows = np.full((len(new), len(project.bodyparts), 2), np.nan)
    if keypoints is not None:
        position = {name: i for i, name in enumerate(frames)}
        rows = np.asarray(keypoints, dtype=np.float64)[[position[name] for name in new]]
    added = LabeledDataset(root=project_uri, scorer=project.scorer, bodyparts=list(project.bodyparts), images=new,
                           keypoints=rows, index_styles=dict(current.index_styles) or {folder: "path"})
    merged = LabeledDataset.concat([current, added]) if len(current) else added
    by_name = sorted(range(len(merged)), key=lambda i: merged.images[i])
    dlc.write_tables(merged.subset(by_name), project_uri)
    return new
