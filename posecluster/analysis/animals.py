"""Filtering and outlier criteria on a multi-animal (tracked) table, one animal's track at a time.

DeepLabCut's filterpredictions filters every column of a multi-animal table on its own, so each
individual's body parts (and the unique parts under "single") are smoothed alone; extract_outlier_frames
judges each animal's track. Here every individual's track goes through the single-animal functions
unchanged, so the two kinds of table are filtered and judged by the same arithmetic. An animal absent from
a frame (NaN) is not an outlier, and the median keeps it absent (absence is what the tracker found);
spline and ARIMA fill an animal's gaps as they fill a single animal's (spline: up to max_gap frames), as
DeepLabCut's filterpredictions does column by column.
"""

from __future__ import annotations

from posecluster.analysis.filtering import FilterOptions, filter_track
from posecluster.analysis.outliers import OutlierOptions, find_outliers
from posecluster.data.multianimal import AnimalTracks


def filter_animals(tracks: AnimalTracks, options: FilterOptions) -> AnimalTracks:
    """Every individual's body parts (and the unique parts) filtered as a single-animal track is."""
    return tracks.from_animals({name: filter_track(track, options) for name, track in tracks.per_animal().items()})


def find_animal_outliers(tracks: AnimalTracks, options: OutlierOptions) -> dict[int, list[str]]:
    """{frame index: the criteria and animals that flagged it ("jump:animal2")}, ascending by frame.

    Each animal's track (and the unique parts', as "single") is judged alone by the single-animal criteria;
    a frame is an outlier when one animal's track is. The ensemble criterion needs an ensemble's variance,
    which multi-animal models do not have."""
    if "ensemble" in options.algorithms:
        raise ValueError("the ensemble criterion needs an ensemble's variance table; multi-animal models are "
                         "not run as ensembles (choose jump, uncertain or fitting)")
    flagged: dict[int, list[str]] = {}
    for name, track in tracks.per_animal().items():
        for frame, reasons in find_outliers(track, options).items():
            flagged.setdefault(frame, []).extend(f"{reason}:{name}" for reason in reasons)
    return dict(sorted(flagged.items()))
