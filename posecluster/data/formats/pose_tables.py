"""A pose table of either layout, told apart by its header: DeepLabCut's single-animal table
(scorer/bodyparts/coords) as a PoseTrack, its multi-animal table (scorer/individuals/bodyparts/coords: a
tracked `_el` table, its `_filtered` table, DeepLabCut's own `_el`/`_bx`/`_tr`) as AnimalTracks. Tools
that take either read it here once and choose their handling from the type of what comes back."""

from __future__ import annotations

from typing import Union

from posecluster import storage
from posecluster.data.formats import madlc
from posecluster.data.formats.poses import read_pose_table, read_track, track_from_frame
from posecluster.data.multianimal import AnimalTracks
from posecluster.data.tracks import PoseTrack

Tracks = Union[PoseTrack, AnimalTracks]


def _csv_has_individuals(uri: str) -> bool:
    """A DLC CSV's second header row starts with 'individuals' in the multi-animal layout."""
    with storage.open_uri(uri, "rb") as handle:
        handle.readline()
        return handle.readline().decode("utf-8-sig", "replace").split(",", 1)[0].strip() == "individuals"


def read_tracks(uri: str) -> Tracks:
    """The table at `uri` (.h5, .csv; .parquet single-animal) in the model its header levels say."""
    if uri.lower().endswith(".csv"):
        return madlc.read_tracks(uri) if _csv_has_individuals(uri) else read_track(uri)
    frame = read_pose_table(uri)
    return madlc.tracks_from_frame(frame, uri) if madlc.is_animal_table(frame) else track_from_frame(frame, uri)
