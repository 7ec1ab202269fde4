"""What the tools of the refine loop (filter, label-video, plot, outliers, the web app's frame and
trajectory views) do with a pose table, by its kind: a single-animal table, or a multi-animal (tracked)
table. The kind is chosen once, from the layout the table was read in (data.formats.pose_tables), so no
tool asks which kind it holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from posecluster import storage
from posecluster.analysis.animals import filter_animals
from posecluster.analysis.filtering import filter_track
from posecluster.data.formats import madlc
from posecluster.data.formats.pose_tables import Tracks, read_tracks
from posecluster.data.formats.poses import write_track
from posecluster.data.multianimal import AnimalTracks
from posecluster.labeling.animal_outliers import extract_animal_outliers
from posecluster.labeling.outliers import extract_track_outliers
from posecluster.viz.animal_video import AnimalFrameLabeler, label_animals_video
from posecluster.viz.labeled_video import FrameLabeler, label_video
from posecluster.viz.plots import animals_trajectory_png, plot_animals, plot_track


def _track_trajectory_png(track, pcutoff: float, title: str) -> bytes:
    with storage.scratch_dir() as tmp:
        return storage.read_bytes(plot_track(track, tmp, pcutoff, title=title)["trajectory.png"])


@dataclass(frozen=True)
class TableKind:
    name: str
    formats: tuple[str, ...]  # the formats a derived table (`_filtered`) can be written in besides .h5
    filter: Callable  # (tracks, FilterOptions) -> tracks
    write: Callable  # (tracks, uri) -> None; the format follows the suffix
    labeler: Callable  # (tracks, LabelOptions, width, height) -> FrameLabeler
    label_video: Callable  # (video uri, tracks, out uri, LabelOptions) -> LabeledVideo
    plot: Callable  # (tracks, out folder, pcutoff, title) -> {name: uri}
    trajectory_png: Callable  # (tracks, pcutoff, title) -> PNG bytes
    # (video uri, table uri, tracks, project uri, OutlierOptions, n, seed, variance uri) -> OutlierFrames
    outliers: Callable


POSES = TableKind("poses", ("csv", "parquet"), filter_track, write_track, FrameLabeler, label_video, plot_track,
                  _track_trajectory_png, extract_track_outliers)
ANIMALS = TableKind("animals", ("csv",), filter_animals, madlc.write_tracks, AnimalFrameLabeler, label_animals_video,
                    plot_animals, animals_trajectory_png, extract_animal_outliers)


def kind_of(tracks: Tracks) -> TableKind:
    return ANIMALS if isinstance(tracks, AnimalTracks) else POSES


def read_table(uri: str) -> tuple[Tracks, TableKind]:
    """The table at `uri` and what the tools do with its kind."""
    tracks = read_tracks(uri)
    return tracks, kind_of(tracks)
